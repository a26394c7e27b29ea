"""The sender against the local Bot API with Telegram's faults: nothing lost, nothing too early."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramForbiddenError, TelegramServerError
from sqlalchemy import select

from bot.config import SenderSettings
from bot.context import AppContext
from bot.db.models import DeliveryFailure, Participant, ParticipantEvent, ScheduledAction
from bot.sandbox.botapi import DEFAULT_TOKEN, FakeBotAPI, Fault, RateLimits
from bot.services import enrollment
from bot.services.delivery import DatabaseDeliveryRecorder
from bot.telegram.sender import SenderMiddleware, urgent_sending

FAST = SenderSettings(backoff_base_seconds=0.01, backoff_max_seconds=0.05, max_attempts=4)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI(rate_limits=RateLimits())
    await server.start()
    yield server
    await server.stop()


def make_bot(api: FakeBotAPI, recorder: Any = None, settings: SenderSettings = FAST,
             timeout: float = 5.0) -> tuple[Bot, SenderMiddleware]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.base_url or ""), timeout=timeout)
    sender = SenderMiddleware(settings, recorder)
    session.middleware(sender)
    return Bot(DEFAULT_TOKEN, session=session), sender


def sends(api: FakeBotAPI, chat_id: int) -> list[dict[str, Any]]:
    return [r for r in api.requests(method="sendMessage", chat_id=chat_id)]


async def test_429_waits_retry_after_then_delivers(api: FakeBotAPI) -> None:
    bot, sender = make_bot(api)
    api.add_fault(Fault(method="sendMessage", kind="retry_after", chat_id=11, retry_after=1))
    try:
        await bot.send_message(11, "hello")
    finally:
        await bot.session.close()
    log = sends(api, 11)
    assert [r["outcome"] for r in log][-1] == "ok"
    assert len(api.chat(11)["messages"]) == 1
    assert api.stats()["early_retries"] == 0
    gap = log[-1]["at"] - log[0]["at"]
    assert gap >= 1.0, f"retried after {gap:.2f}s, before retry_after"
    assert sender.stats["retry_after"] == 1


async def test_5xx_and_timeouts_are_retried_then_delivered(api: FakeBotAPI) -> None:
    bot, sender = make_bot(api, timeout=0.5)
    api.add_fault(Fault(method="sendMessage", kind="server_error", chat_id=12, times=2, status=502))
    api.add_fault(Fault(method="sendMessage", kind="slow", chat_id=13, times=1, delay=1.5))
    try:
        await bot.send_message(12, "after two 502s")
        await bot.send_message(13, "after a timeout")
    finally:
        await bot.session.close()
    assert [m["text"] for m in api.chat(12)["messages"]] == ["after two 502s"]
    # A timed-out send may still have been delivered (as with Telegram): at most one extra copy.
    assert 1 <= len(api.chat(13)["messages"]) <= 2
    assert sender.stats["server_error"] == 2 and sender.stats["network"] >= 1


async def test_a_send_that_keeps_failing_is_recorded_with_its_reason(api: FakeBotAPI, ctx: AppContext) -> None:
    bot, sender = make_bot(api, DatabaseDeliveryRecorder(ctx))
    api.add_fault(Fault(method="sendMessage", kind="server_error", chat_id=14, times=10, status=500))
    try:
        with pytest.raises(TelegramServerError):
            await bot.send_message(14, "never arrives")
        await sender.settled()
    finally:
        await bot.session.close()
    async with ctx.sessionmaker() as s:
        failure = (await s.scalars(select(DeliveryFailure))).one()
    assert failure.chat_id == 14 and failure.method == "sendMessage"
    assert "after 4 attempts" in failure.reason and "never arrives" not in failure.reason


async def test_blocked_bot_marks_participant_unreachable_and_tells_clinician(api: FakeBotAPI,
                                                                             ctx: AppContext) -> None:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as s:
        await enrollment.invite_staff(s, now, ctx.settings, "dr-lee", "therapist")
        issued = await enrollment.invite_participant(s, now, ctx.settings, "P-1", "dr-lee")
        await enrollment.redeem_invite(s, now, issued.token, 21, 21, None)
        await s.commit()
    api.block(21)
    bot, sender = make_bot(api, DatabaseDeliveryRecorder(ctx))
    try:
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(21, "check-in")
        await sender.settled()  # written down in its own transaction, after the send gave up
    finally:
        await bot.session.close()
    assert len(sends(api, 21)) == 1  # 403 is permanent: never retried
    async with ctx.sessionmaker() as s:
        p = await s.scalar(select(Participant).where(Participant.alias == "P-1"))
        assert p is not None and p.unreachable_at is not None
        events = (await s.scalars(select(ParticipantEvent.kind))).all()
        notice = await s.scalar(select(ScheduledAction).where(ScheduledAction.kind == "staff_notice"))
    assert "blocked_bot" in events
    assert notice is not None and notice.staff_id == p.therapist_id and notice.payload["notice"] == "blocked_bot"


async def test_per_chat_and_global_limits_are_kept_without_429(api: FakeBotAPI) -> None:
    settings = SenderSettings(messages_per_second=25.0, burst=5, per_chat_interval_seconds=1.05)
    bot, sender = make_bot(api, settings=settings)
    import asyncio

    try:
        # 4 messages to one chat and 60 to others, all at once.
        await asyncio.gather(*(bot.send_message(30, f"m{i}") for i in range(4)),
                             *(bot.send_message(100 + i, "wave") for i in range(60)))
    finally:
        await bot.session.close()
    assert api.stats()["too_many_requests"] == 0
    assert sender.stats["retry_after"] == 0
    assert [m["text"] for m in api.chat(30)["messages"]] == ["m0", "m1", "m2", "m3"]  # order kept


async def test_urgent_sends_jump_the_queue(api: FakeBotAPI) -> None:
    import asyncio
    import time

    settings = SenderSettings(messages_per_second=20.0, burst=1, per_chat_interval_seconds=0.01)
    bot, _ = make_bot(api, settings=settings)
    try:
        wave = [asyncio.create_task(bot.send_message(200 + i, "wave")) for i in range(40)]
        await asyncio.sleep(0)  # the wave is queued first
        started = time.monotonic()
        with urgent_sending():
            await bot.send_message(999, "crisis reply")
        urgent_latency = time.monotonic() - started
        await asyncio.gather(*wave)
    finally:
        await bot.session.close()
    # The wave alone takes ~2 s at 20/s; the urgent message must not wait behind it.
    assert urgent_latency < 0.5, f"urgent send waited {urgent_latency:.2f}s"


async def test_a_turn_not_used_for_a_send_is_given_back() -> None:
    # One message a second, no burst: a turn spent on a row that was then skipped would make the
    # next row wait a whole second for nothing.
    sender = SenderMiddleware(SenderSettings(messages_per_second=1.0, burst=1))
    async with sender.turn():
        pass  # e.g. the check-in was already answered: nothing sent
    async with asyncio.timeout(0.5), sender.turn():
        pass
