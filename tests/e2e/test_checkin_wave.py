"""Restart safety of the check-in wave: 500 check-ins fall due at once, the local Bot API enforces
Telegram's real rate limits, the bot is killed with SIGKILL part-way and started again. Every
participant must get their check-in, and nobody more than one extra copy (a crash between
Telegram's 200 and our "sent" may repeat a message; it may never lose one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.clock import OffsetFileClock
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction, Staff
from bot.sandbox.botapi import FakeBotAPI, RateLimits
from tests.support.e2e import BotProcess

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

WAVE = 500
FIRST_CHAT = 50_000_000  # far from the ids other e2e tests use


@pytest.fixture(scope="module")
async def botapi() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI(rate_limits=RateLimits())  # Telegram's numbers: 30/s overall, 1/s per chat
    await api.start()
    yield api
    await api.stop()


async def _create_participants(db_url: str, checkin_time: str) -> None:
    """Active participants written straight into the database (enrolling 500 by chat takes minutes)."""
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    try:
        async with make_sessionmaker(engine)() as session:
            staff = Staff(alias="dr-wave", role="therapist", locale="en", active=True, on_call=False, created_at=now)
            session.add(staff)
            await session.flush()
            await session.execute(insert(Participant), [
                dict(alias=f"W-{i}", telegram_user_id=FIRST_CHAT + i, chat_id=FIRST_CHAT + i,
                     status=ParticipantStatus.ACTIVE, locale="en", timezone="UTC", checkin_time=checkin_time,
                     quiet_start="00:00", quiet_end="00:00", therapist_id=staff.id, consent_version="test",
                     consented_at=now, created_at=now)
                for i in range(WAVE)])
            await session.commit()
    finally:
        await engine.dispose()


async def _count_rows(db_url: str, *statuses: str, due_by: datetime | None = None) -> int:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            query = select(func.count()).select_from(ScheduledAction).where(ScheduledAction.kind == "checkin",
                                                                            ScheduledAction.status.in_(statuses))
            if due_by is not None:
                query = query.where(ScheduledAction.due_at <= due_by)
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


def own_bot_rate(proc: BotProcess) -> float:
    from bot.config import load_settings

    return load_settings(proc.config_path, env={}).sender.messages_per_second


def _copies(botapi: FakeBotAPI) -> list[int]:
    return [sum("How is your mood" in (m["visible_text"] or "") for m in botapi.chat(FIRST_CHAT + i)["messages"])
            for i in range(WAVE)]


async def _wait(condition: Callable[[], Any], timeout: float, what: str, proc: BotProcess) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{proc.log_tail()}")


async def test_a_wave_of_checkins_survives_sigkill_without_loss(own_bot: BotProcess, botapi: FakeBotAPI,
                                                                 control: object) -> None:
    await botapi.reset()  # the module's Bot API is shared: start from empty chats
    due = datetime.now(UTC) + timedelta(minutes=3)
    await _create_participants(own_bot.db_url, due.strftime("%H:%M"))
    own_bot.start()
    await own_bot.wait_ready(control)  # type: ignore[arg-type]
    # The planner's first pass creates the day's rows; then the clock moves past the time.
    async def planned() -> bool:
        return await _count_rows(own_bot.db_url, ActionStatus.PENDING, due_by=due + timedelta(minutes=6)) >= WAVE

    await _wait(planned, 60, "the planned wave", own_bot)
    own_bot.move_clock(minutes=12)  # past 09:xx plus the 0-5 minute jitter
    started = time.monotonic()
    await _wait(lambda: sum(c > 0 for c in _copies(botapi)) >= WAVE // 3, 60, "a third of the wave", own_bot)
    sent_before_kill = sum(c > 0 for c in _copies(botapi))
    own_bot.kill()
    first_run = sorted(r["at"] for r in botapi.requests(method="sendMessage")
                       if r["chat_id"] is not None and r["chat_id"] >= FIRST_CHAT and r["outcome"] == "ok")
    steady = first_run[10:]  # after the sender's initial burst
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0

    own_bot.start()
    await own_bot.wait_ready(control)  # type: ignore[arg-type]
    await _wait(lambda: all(c > 0 for c in _copies(botapi)), 120, "every participant's check-in", own_bot)
    elapsed = time.monotonic() - started
    # Let the scheduler finish whatever was still claimed, so that late duplicates would show.
    bot_now = OffsetFileClock(own_bot.clock_file).now()

    async def nothing_due_left() -> bool:
        return await _count_rows(own_bot.db_url, ActionStatus.PENDING, ActionStatus.CLAIMED, due_by=bot_now) == 0

    await _wait(nothing_due_left, 30, "no due check-in left unsent", own_bot)
    copies = _copies(botapi)
    stats = botapi.stats()
    print(f"\nwave: {WAVE} check-ins, SIGKILL after {sent_before_kill}, all delivered {elapsed:.1f}s after "
          f"the clock moved (including a restart); duplicates: {sum(c - 1 for c in copies)}; "
          f"429 answers: {stats['too_many_requests']}; rate before the kill {rate:.1f} msg/s "
          f"(sender limit {own_bot_rate(own_bot)}/s, Telegram about 30/s)")
    assert min(copies) == 1 and max(copies) <= 2, f"copies per participant: min {min(copies)} max {max(copies)}"
    assert stats["too_many_requests"] == 0
    assert await _count_rows(own_bot.db_url, ActionStatus.SENT) >= WAVE


@pytest.mark.parametrize("db_kind", ["postgres"])
async def test_two_workers_on_postgresql_send_the_wave_once(own_bot: BotProcess, botapi: FakeBotAPI,
                                                            control: object, tmp_path: Path) -> None:
    await botapi.reset()
    due = datetime.now(UTC) + timedelta(minutes=3)
    await _create_participants(own_bot.db_url, due.strftime("%H:%M"))
    # One send rate for the whole bot: the two workers share the shipped 25/s through PostgreSQL.
    second = BotProcess(tmp_path / "second", own_bot.api_base, own_bot.db_url)
    second.workdir.mkdir()
    own_bot.start()
    second.start()
    try:
        await own_bot.wait_ready(control)  # type: ignore[arg-type]
        await _wait(lambda: "starting in polling mode" in second.log_text(), 60, "the second worker", second)

        async def planned() -> bool:
            return await _count_rows(own_bot.db_url, ActionStatus.PENDING, due_by=due + timedelta(minutes=6)) >= WAVE

        await _wait(planned, 60, "the planned wave", own_bot)
        for proc in (own_bot, second):  # both processes see the same moved clock
            proc.move_clock(minutes=12)
        started = time.monotonic()
        await _wait(lambda: all(c > 0 for c in _copies(botapi)), 120, "every participant's check-in", own_bot)
        elapsed = time.monotonic() - started
        bot_now = OffsetFileClock(own_bot.clock_file).now()

        async def nothing_due_left() -> bool:
            return await _count_rows(own_bot.db_url, ActionStatus.PENDING, ActionStatus.CLAIMED, due_by=bot_now) == 0

        await _wait(nothing_due_left, 30, "no due check-in left unsent", own_bot)
        copies = _copies(botapi)
        print(f"\ntwo workers: {WAVE} check-ins in {elapsed:.1f}s, duplicates: {sum(c - 1 for c in copies)}, "
              f"429 answers: {botapi.stats()['too_many_requests']}")
        assert copies == [1] * WAVE
        assert botapi.stats()["too_many_requests"] == 0
        # Together no faster than the one budget allows (each alone at 25/s would send the wave in
        # half the time, and Telegram would answer 429): the rate is the bot's, not each worker's.
        assert elapsed >= 0.9 * WAVE / 25.0
    finally:
        await second.stop_async()
