"""A crisis during the 9:00 wave: the clinician's page does not queue behind the check-ins.

The scheduler claims check-ins in batches that take many seconds to send at Telegram's rate;
pages have a lane of their own (OutboxWorker.urgent), and the sender lets them ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import timedelta

from bench.outbound_wave import create_due_checkins
from bot.clock import ManualClock
from bot.config import Settings
from bot.sandbox.botapi import FakeBotAPI
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

WAVE = 120
RATE = 20.0  # messages per second: the wave takes about 6 s


async def test_a_page_goes_out_while_a_wave_is_still_being_sent(settings: Settings, api: FakeBotAPI, db_url: str,
                                                                clock: ManualClock) -> None:
    s = inproc_settings(settings, api, db_url,
                        sender=dataclasses.replace(settings.sender, messages_per_second=RATE, burst=5,
                                                   per_chat_interval_seconds=0.01),
                        schedule=dataclasses.replace(settings.schedule, jitter_minutes=0.0, tick_seconds=1.0))
    bot = await InProcessBot.start(s, api, clock)
    try:
        now = clock.now()
        async with bot.ctx.sessionmaker() as session:
            therapist = await add_staff(session, "Dr. K", 900, now)
            wave = [await add_participant(session, f"P{i}", therapist, 1000 + i, now) for i in range(WAVE)]
            await add_participant(session, "Robin", therapist, 5000, now)
            await session.commit()
        await create_due_checkins(db_url, [p.id for p in wave], now - timedelta(seconds=5), "America/New_York")
        worker = asyncio.create_task(bot.running.worker.run_forever())
        try:
            await _wait(lambda: _delivered(api, wave) >= 10, timeout=30)
            said_at = time.monotonic()
            await bot.say(5000, "I want to kill myself")
            await _wait(lambda: any("Safety alert" in t for t in bot.texts(900)), timeout=30)
            page_seconds = time.monotonic() - said_at
            check_ins_by_then = _delivered(api, wave)
            await _wait(lambda: _delivered(api, wave) == WAVE, timeout=60)
            bot_texts_robin, clinician_texts = bot.texts(5000), bot.texts(900)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    finally:
        await bot.close()
    print(f"\npage sent {page_seconds:.2f} s after the message, with {check_ins_by_then}/{WAVE} check-ins out")
    assert check_ins_by_then < WAVE - 20, "the page waited for the wave"
    assert page_seconds < 2.0
    assert "988" in bot_texts_robin[0]  # the participant had the crisis reply
    assert len([t for t in clinician_texts if "Safety alert" in t]) == 1  # paged once, not twice


def _delivered(api: FakeBotAPI, participants: list) -> int:  # type: ignore[type-arg]
    return sum(1 for p in participants if api.chat(p.chat_id)["messages"])


async def _wait(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
