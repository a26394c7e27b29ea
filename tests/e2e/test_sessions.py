"""The session calendar end to end: an operator imports the calendar and fills a group with the
real `iopbot sessions` commands; 15 minutes before the session the participant gets the reminder
with its Join link from the real bot process, says they can't attend, gives a reason, and the
clinician and the facilitator are told — on SQLite and PostgreSQL, with the clock moved."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import BotAPIControl
from bot.services.calendar.recurrence import local_to_utc
from tests.support.e2e import BotProcess, Person, buttons, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")
LINK = "https://zoom.us/j/8675309"


async def wait_for(person: Person, needle: str, timeout: float = 20.0) -> dict[str, Any]:  # noqa: ASYNC109
    """The first message in this chat that contains `needle` (other messages, like a daily
    check-in the moved clock brought, may come in between)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in await person.all_messages():
            if needle in (message.get("visible_text") or ""):
                return message
        await asyncio.sleep(0.1)
    texts = [m.get("visible_text") for m in await person.all_messages()]
    raise AssertionError(f"no message with {needle!r} in chat {person.chat_id}: {texts}")


async def test_reminder_join_link_and_cant_attend(shared_bot: BotProcess, control: BotAPIControl,
                                                  tmp_path: Path) -> None:
    facilitator = await enroll_staff(shared_bot, control, "dr-group")
    clinician = await enroll_staff(shared_bot, control, "dr-care")
    sam = await enroll_participant(shared_bot, control, "P-remind", "dr-care")  # Chicago, quiet 22:00-08:00

    now = OffsetFileClock(shared_bot.clock_file).now()
    local = (now + timedelta(hours=3)).astimezone(CHICAGO).replace(tzinfo=None, second=0, microsecond=0)
    start = local.replace(minute=local.minute - local.minute % 5)
    calendar = tmp_path / "sessions.csv"
    calendar.write_text("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule\n"
                        f"Evening group,group,{start:%Y-%m-%dT%H:%M},90,America/Chicago,{LINK},dr-group,Evening,"
                        "FREQ=WEEKLY\n")
    imported = shared_bot.cli("sessions", "import", str(calendar))
    assert imported.returncode == 0, imported.stderr
    assert "Imported: 1 session from sessions.csv (1 new, 0 updated, 0 unchanged)" in imported.stdout
    added = shared_bot.cli("sessions", "group", "add", "Evening", "P-remind")
    assert added.returncode == 0 and "members now: P-remind" in added.stdout, added.stderr
    listed = shared_bot.cli("sessions", "list")
    assert "Evening group" in listed.stdout and "dr-group" in listed.stdout, listed.stderr

    start_utc = local_to_utc(start, CHICAGO)
    shared_bot.move_clock(seconds=(start_utc - timedelta(minutes=15) - now).total_seconds() + 1)
    reminder = await wait_for(sam, "Your group session")
    ampm = "AM" if start.hour < 12 else "PM"
    assert reminder["visible_text"] == f"Your group session starts at {(start.hour % 12) or 12}:{start:%M} {ampm}."
    join, cant = [b for row in reminder["reply_markup"]["inline_keyboard"] for b in row]
    assert join == {"text": "Join", "url": LINK}
    assert cant["text"] == "Can't attend"

    await sam.press("Can't attend")
    question = await wait_for(sam, "What is the main reason?")
    assert buttons(question) == ["Sick", "Work", "Family", "Transport", "Other"]
    await sam.press("Transport")
    await wait_for(sam, "I've let your care team know you can't make it to your group session")
    for staff in (clinician, facilitator):
        notice = await wait_for(staff, "P-remind can't attend the group session")
        assert notice["visible_text"].endswith("Reason: Transport.")
        assert "Evening group" not in notice["visible_text"]  # minimum necessary: no session title

    listed = shared_bot.cli("sessions", "list")
    assert "can't attend: P-remind" in listed.stdout, listed.stdout + listed.stderr
