"""Fault-injection suite: real bot processes (forked from one pre-imported parent, see
tests/support/forkserver.py) or the assembled bot in this process, against the local Bot API, with
faults injected.

Every test prints its figures (visible with `pytest -s -m chaos`) and asserts the targets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.sandbox.botapi import BotAPIControl, FakeBotAPI, RateLimits

TIMEZONE = "America/New_York"


@pytest.fixture
async def botapi() -> AsyncIterator[FakeBotAPI]:
    # Per-chat limits as Telegram's; the global one raised so a 1,000-message wave takes seconds
    # (tests that need Telegram's own numbers set them).
    api = FakeBotAPI(rate_limits=RateLimits(global_per_second=300.0, global_burst=300.0))
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def control(botapi: FakeBotAPI) -> AsyncIterator[BotAPIControl]:
    assert botapi.base_url
    async with BotAPIControl(botapi.base_url) as c:
        yield c


async def due_checkins(url: str, participant_ids: list[int], *, due: datetime | None = None) -> datetime:
    """One `checkin` row per participant for today (their local date), due now: a wave."""
    from bench.outbound_wave import create_due_checkins

    due = due or datetime.now(UTC) - timedelta(seconds=5)
    await create_due_checkins(url, participant_ids, due, TIMEZONE)
    return due


async def rows_by_status(url: str, kind: str = "checkin", key_suffix: str = "",
                         participant_ids: list[int] | None = None) -> dict[str, int]:
    from sqlalchemy import func, select

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import ScheduledAction

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.execute(
                select(ScheduledAction.status, func.count())
                .where(ScheduledAction.kind == kind, ScheduledAction.key.like(f"%{key_suffix}"),
                       ScheduledAction.participant_id.in_(participant_ids) if participant_ids is not None else True)
                .group_by(ScheduledAction.status))).all()
    finally:
        await engine.dispose()
    return {status: int(n) for status, n in rows}


async def scalar(url: str, statement: Any) -> Any:
    from bot.db.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await session.scalar(statement)
    finally:
        await engine.dispose()


def local_today() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(TIMEZONE)).date().isoformat()


def report(title: str, figures: dict[str, Any]) -> None:
    """Print a test's figures as one block (pytest -s shows it; -rP shows it for passed tests)."""
    width = max(len(k) for k in figures)
    print(f"\n[chaos] {title}")
    for key, value in figures.items():
        print(f"  {key.ljust(width)}  {value}")
