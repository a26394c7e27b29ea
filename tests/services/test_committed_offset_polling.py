"""Polling confirms an update only once it is committed, and still fetches what comes meanwhile
(bot/telegram/polling.py), against the local Bot API over HTTP.

A message behind updates still in their database work reaches the dispatcher at once (its safety
gate sends a crisis reply without the database): waiting for a batch's commits before the next
getUpdates held a crisis message at Telegram for seconds under ~100 updates/s. Meanwhile the
offset never passes an update that has not committed, unless more than `WINDOW` are in progress
(a backlog: getUpdates returns at most 100, so they would hide everything newer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

from bot.sandbox.botapi import DEFAULT_TOKEN, FakeBotAPI, RateLimits
from bot.telegram.polling import WINDOW, CommittedOffsetPoller


class Harness:
    def __init__(self, api: FakeBotAPI, bot: Bot) -> None:
        self.api, self.bot = api, bot
        self.release = asyncio.Event()  # the "slow" updates' database work ends
        self.handled: dict[str, int] = {}  # text -> update_id, as the dispatcher got them
        router = Router()

        @router.message()
        async def handle(message: Message, event_update: Any) -> None:
            self.handled[message.text or ""] = event_update.update_id
            if (message.text or "").startswith("slow"):
                await self.release.wait()

        self.dp = Dispatcher()
        self.dp.include_router(router)
        self.poller = CommittedOffsetPoller(self.dp, bot, timeout=1, allowed_updates=None, hold_seconds=60.0)

    def say(self, user: int, text: str) -> int:
        return int(self.api.inject_message(user, text, first_name="Sam")["update_id"])

    async def until(self, what: str, check: Any, timeout: float = 3.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    api = FakeBotAPI(rate_limits=RateLimits(enabled=False))
    await api.start()
    assert api.base_url
    bot = Bot(DEFAULT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
    h = Harness(api, bot)
    task = asyncio.create_task(h.poller.run())
    try:
        yield h
    finally:
        h.release.set()
        h.poller.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await asyncio.gather(*h.poller.in_progress, return_exceptions=True)
        await bot.session.close()
        await api.stop()


async def test_a_message_behind_updates_in_progress_is_fetched_at_once_and_they_stay_unconfirmed(
        harness: Harness) -> None:
    first = harness.say(8001, "slow 0")
    for n in range(1, 10):
        harness.say(8001 + n, f"slow {n}")
    await harness.until("the slow ones handed on", lambda: len(harness.handled) == 10)
    harness.say(8100, "I want to end my life")
    await harness.until("the new message handed on", lambda: "I want to end my life" in harness.handled, 1.0)
    # Nothing of the ten has committed: Telegram still holds them all (a killed poller's successor
    # would fetch them again).
    assert harness.poller.offset == first and harness.poller.released == 0
    harness.release.set()
    await harness.until("all confirmed", lambda: harness.poller.offset == harness.handled["I want to end my life"] + 1)


async def test_a_backlog_larger_than_the_window_does_not_hide_a_new_message(harness: Harness) -> None:
    for n in range(WINDOW * 3):
        harness.say(9000 + n, f"slow {n}")
    await harness.until("the backlog handed on", lambda: len(harness.handled) == WINDOW * 3, 10.0)
    harness.say(9999, "I want to end my life")
    # Without releasing the oldest, a hundred unconfirmed updates would fill every getUpdates answer.
    await harness.until("the new message handed on", lambda: "I want to end my life" in harness.handled, 1.0)
    assert harness.poller.released >= WINDOW * 2  # confirmed uncommitted, said in the log
