"""A crisis behind a backlog: the clinician's page does not wait for the updates that came first.

The assembled bot in process, on SQLite and PostgreSQL: a backlog of everyday messages from other
participants is being handled (each update on its own task, as aiogram's polling runs them) when a
participant writes a crisis message. Its unit of work goes ahead of the waiting ones
(bot/telegram/lanes.py), and the page is claimed and sent on the outbox's urgent lane while the
backlog holds back. Before, every update queued for a database connection in arrival order and the
page went out after the whole backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.config import Settings
from bot.db.models import ProcessedUpdate
from bot.sandbox.botapi import FakeBotAPI
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

BACKLOG = 150
DR, ROBIN = 930_001, 8_000
CHATTY = [8_100 + i for i in range(BACKLOG)]


async def test_a_crisis_behind_a_backlog_pages_before_the_backlog_is_through(
        settings: Settings, api: FakeBotAPI, db_url: str, clock: ManualClock) -> None:
    s = inproc_settings(settings, api, db_url,
                        schedule=dataclasses.replace(settings.schedule, jitter_minutes=0.0, tick_seconds=1.0))
    bot = await InProcessBot.start(s, api, clock)
    try:
        now = clock.now()
        async with bot.ctx.sessionmaker() as session:
            dr = await add_staff(session, "dr-k", DR, now)
            for user in [ROBIN, *CHATTY]:
                await add_participant(session, f"P-{user}", dr, user, now)
            await session.commit()
        worker = asyncio.create_task(bot.running.worker.run_forever())
        try:
            await bot.say(ROBIN, "hello")  # Robin has written before: the bot knows them
            backlog = [asyncio.create_task(bot.say(user, "had a good walk today")) for user in CHATTY]
            await asyncio.sleep(0.05)  # the backlog is being handled
            said_at = time.monotonic()
            crisis = asyncio.create_task(bot.say(ROBIN, "I want to kill myself"))
            await _wait(lambda: any("Safety alert" in t for t in bot.texts(DR)), timeout=60)
            page_seconds = time.monotonic() - said_at
            async with bot.ctx.sessionmaker() as session:
                handled_by_then = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
            await asyncio.gather(crisis, *backlog)
        finally:
            bot.running.worker.stop()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(worker, 10)
    finally:
        await bot.close()
    handled = int(handled_by_then or 0) - 2  # Robin's two messages
    print(f"\npage sent {page_seconds * 1000:.0f} ms after the message, {handled}/{BACKLOG} of the backlog handled")
    assert any("988lifeline.org" in t for t in bot.texts(ROBIN))  # the crisis reply, before any database work
    assert handled < BACKLOG // 2, "the page waited for the backlog"
    assert page_seconds < 2.0


async def _wait(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
