"""Medication reminders over real HTTP with the real `iopbot run` process: a participant sets one
up in /meds, it arrives at their local time (the bot's clock is moved, not waited for), Taken is
recorded and shows in /meds, Snooze brings it back after the snooze, and three unanswered in a row
tell the clinician only when the participant agreed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess, Person, buttons, enroll_participant, enroll_staff, running

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
async def meds_bot(tmp_path_factory: pytest.TempPathFactory, botapi: FakeBotAPI, module_db_url: str,
                   control: BotAPIControl) -> AsyncIterator[BotProcess]:
    proc = BotProcess(tmp_path_factory.mktemp("bot"), botapi.base_url or "", module_db_url,
                      extra_config="[medications]\nmissed_after_minutes = 60\nsnooze_minutes = 15\n")
    async with running(proc, control):
        yield proc


def _minutes_until(proc: BotProcess, hour: int, minute: int) -> float:
    """Minutes from the bot's now to one minute after the next hour:minute in Chicago (DST-safe)."""
    now = OffsetFileClock(proc.clock_file).now().astimezone(CHICAGO)
    day = now.date()
    target = datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHICAGO)
    if target <= now + timedelta(minutes=2):
        day += timedelta(days=1)
        target = datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHICAGO)
    return (target - now).total_seconds() / 60 + 1


async def _count(person: Person, text: str, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait until `count` messages in the chat show `text`."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [m for m in await person.all_messages() if text in (m.get("visible_text") or "")]
        if len(seen) >= count:
            assert len(seen) == count, [m.get("visible_text") for m in seen]
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(seen)} of {count} messages showing {text!r} in chat {person.chat_id}")
        await asyncio.sleep(0.05)


async def _add(person: Person, name: str, at: str, consent: str) -> None:
    await person.say("/meds")
    await person.wait_for_message("Your medication reminders")
    await person.press("Add a reminder")
    await person.wait_for_message("What do you want to call this reminder")
    await person.say(name)
    await person.wait_for_message("At what time")
    await person.say(at)
    await person.wait_for_message("On which days")
    await person.press("Every day")
    await person.wait_for_message("May your care team see how many reminders")
    await person.press(consent)
    await person.wait_for_message(f"Saved. I'll remind you at {at}, every day")


async def test_reminder_arrives_taken_is_recorded_and_snooze_brings_it_back(
        meds_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(meds_bot, control, "dr-meds")
    sam = await enroll_participant(meds_bot, control, "P-601", "dr-meds")  # Chicago
    await _add(sam, "morning pill", "08:30", "Yes, tell them")

    meds_bot.move_clock(minutes=_minutes_until(meds_bot, 8, 30))
    reminder = await sam.wait_for_message("⏰ 08:30: your reminder for morning pill.")
    assert buttons(reminder) == ["✅ Taken", "⏰ Snooze 15 min", "Skip"]
    await sam.press("✅ Taken")
    await sam.wait_for_message("Taken. Noted.")
    await sam.say("/meds")
    overview = await sam.wait_for_message("Last 7 days")
    assert "1. morning pill: 08:30, every day" in overview["visible_text"]
    assert "Last 7 days: 1 of 1 taken" in overview["visible_text"]

    meds_bot.move_clock(minutes=_minutes_until(meds_bot, 8, 30))
    await _count(sam, "your reminder for morning pill", 2)
    await sam.press("Snooze")
    await sam.wait_for_message("Snoozed. I'll remind you again at 08:46")  # pressed a minute late
    meds_bot.move_clock(minutes=16)
    again = await sam.wait_for_message("Reminder again: morning pill (08:30)")
    assert buttons(again)[0] == "✅ Taken"
    await sam.press("✅ Taken")
    await _count(sam, "Taken. Noted.", 2)
    await sam.say("/meds")
    await sam.wait_for_message("Last 7 days: 2 of 2 taken")


async def test_three_missed_tell_the_clinician_only_with_consent(meds_bot: BotProcess,
                                                                control: BotAPIControl) -> None:
    agreed_dr = await enroll_staff(meds_bot, control, "dr-told")
    declined_dr = await enroll_staff(meds_bot, control, "dr-untold")
    agreed = await enroll_participant(meds_bot, control, "P-602", "dr-told")
    declined = await enroll_participant(meds_bot, control, "P-603", "dr-untold")
    await _add(agreed, "lithium", "07:00", "Yes, tell them")
    await _add(declined, "blue one", "07:00", "No")

    for day in range(1, 4):
        meds_bot.move_clock(minutes=_minutes_until(meds_bot, 7, 0))
        await _count(agreed, "your reminder for lithium", day)
        await _count(declined, "your reminder for blue one", day)
        meds_bot.move_clock(minutes=65)  # no answer within the hour: missed

    notice = await agreed_dr.wait_for_message("doses in a row")
    assert notice["visible_text"] == "P-602 has missed 3 doses in a row of a reminder they set."
    # Both runs were closed in the same pass, before this notice went out: the other has none.
    assert not any("doses in a row" in (m.get("visible_text") or "") for m in await declined_dr.all_messages())
    assert not any("lithium" in (m.get("visible_text") or "") for m in await agreed_dr.all_messages())
    log = meds_bot.log_text()  # the bot logs at DEBUG here: still no name a participant typed
    assert "lithium" not in log and "blue one" not in log and "morning pill" not in log
