"""The daily check-in over real HTTP with the real `iopbot run` process: it comes at the
participant's time (the bot's clock is moved, not waited for), is answered with buttons and a
typed line, and a "yes" to the safety question gets help on screen and pages the clinician."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, buttons, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")


def _minutes_until_next_checkin(proc: BotProcess, at: str = "09:00") -> float:
    """Minutes from the bot's now to a few minutes after the next `at` in Chicago (past any jitter)."""
    now = OffsetFileClock(proc.clock_file).now().astimezone(CHICAGO)
    hour, minute = map(int, at.split(":"))
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target < now + timedelta(minutes=10):
        target += timedelta(days=1)
    target = datetime.combine(target.date(), target.timetz().replace(tzinfo=None), CHICAGO)  # DST-safe
    return (target - now).total_seconds() / 60 + 6  # the jitter is 0-5 minutes


async def test_checkin_arrives_at_the_moved_clock_time_and_a_yes_pages_the_clinician(
        shared_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-chk")
    sam = await enroll_participant(shared_bot, control, "P-301", "dr-chk")  # Chicago, 09:00

    shared_bot.move_clock(minutes=_minutes_until_next_checkin(shared_bot))
    question = (await sam.read())[0]
    assert "Time for your daily check-in" in question["visible_text"]
    assert "How is your mood" in question["visible_text"]
    assert buttons(question) == [str(n) for n in range(11)]

    await sam.press("6")
    assert "cravings" in await sam.read_text()
    await sam.press("2")
    assert "hours did you sleep" in await sam.read_text()
    await sam.say("7.5")
    assert "medication" in await sam.read_text()
    await sam.press("Yes")
    assert "thoughts of hurting yourself" in await sam.read_text()
    await sam.press("Yes")
    crisis, *rest = (m["visible_text"] for m in await sam.read(3))
    assert "988" in crisis and "911" in crisis
    # The check-in's next question, and (once the page was delivered: its own moment) the care-team line.
    assert any("I've let your care team know" in t for t in rest)
    assert any("anything you want your care team to know" in t for t in rest)

    alert = (await clinician.read())[0]
    assert "Safety alert: URGENT" in alert["visible_text"] and "P-301" in alert["visible_text"]
    assert buttons(alert)[0] == "Acknowledge"

    await sam.say("Rough day, but I went to group.")
    assert "Thank you for checking in" in await sam.read_text()

    status = shared_bot.cli("schedule", "status")
    assert status.returncode == 0, status.stderr
    line = next(row for row in status.stdout.splitlines() if row.strip().startswith("checkin "))
    assert line.split()[4] == "1", status.stdout  # kind, pending, sending, sent, answered
