"""The pre-session brief end to end, with the real `iopbot run` process and the local Bot API over
HTTP: with `[brief] minutes_before = 90`, an individual session imported with `iopbot sessions
import` brings its brief to the facilitator and to the participant's clinician 90 minutes before
the start (the clock is moved, not waited for), followed by the chart as a real PNG; after the
start the facilitator marks attendance from the brief's button."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import BotAPIControl
from bot.services.calendar.recurrence import local_to_utc
from bot.services.charts.render import point_counts_of
from tests.support.e2e import BotProcess, buttons, enroll_participant, enroll_staff, running

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")


@pytest.mark.bot_config("[brief]\nminutes_before = 90\n")
async def test_the_brief_arrives_at_the_configured_time_with_the_chart(own_bot: BotProcess, control: BotAPIControl,
                                                                       tmp_path: Path) -> None:
    async with running(own_bot, control):
        await _brief_round_trip(own_bot, control, tmp_path)


async def _brief_round_trip(own_bot: BotProcess, control: BotAPIControl, tmp_path: Path) -> None:
    facilitator = await enroll_staff(own_bot, control, "dr-brief-fac")
    clinician = await enroll_staff(own_bot, control, "dr-brief-care")
    await enroll_participant(own_bot, control, "P-brief", "dr-brief-care")

    now = OffsetFileClock(own_bot.clock_file).now()
    local = (now + timedelta(hours=4)).astimezone(CHICAGO).replace(tzinfo=None, second=0, microsecond=0)
    start = local.replace(minute=local.minute - local.minute % 5)
    calendar = tmp_path / "sessions.csv"
    calendar.write_text("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule,participants\n"
                        f"Individual,individual,{start:%Y-%m-%dT%H:%M},50,America/Chicago,https://zoom.us/j/4,"
                        "dr-brief-fac,,,P-brief\n")
    imported = own_bot.cli("sessions", "import", str(calendar))
    assert imported.returncode == 0, imported.stderr
    start_utc = local_to_utc(start, CHICAGO)

    own_bot.move_clock(seconds=(start_utc - timedelta(minutes=92) - now).total_seconds())
    await clinician.say("/help")  # a round trip: the bot has ticked at least once at the new time
    await clinician.wait_for_message("Staff commands")
    assert not [m for m in await facilitator.all_messages() if "Brief" in (m.get("visible_text") or "")]

    own_bot.move_clock(minutes=2, seconds=1)
    for person in (facilitator, clinician):
        brief = await person.wait_for_message("Brief: P-brief · individual session")
        assert "Check-ins answered" in brief["visible_text"] and "Safety alerts: none" in brief["visible_text"]
        assert buttons(brief) == ["✅ Mark attendance"]
        chart = await person.wait_for_message("Chart of P-brief")
        assert chart["kind"] == "photo"
        png = await control.file_bytes(chart["photo"]["file_id"])
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            assert image.format == "PNG"
        assert point_counts_of(png)["mood"] == 0  # no check-in answered yet, and the chart says so

    own_bot.move_clock(minutes=95)  # the session has started
    await facilitator.press("Mark attendance")
    await facilitator.wait_for_message("Attendance · individual session")
    await facilitator.press("P-brief")
    deadline = time.monotonic() + 20
    while True:  # the roster message is edited in place
        roster = await facilitator.wait_for_message("Attendance · individual session")
        if "✅ P-brief" in buttons(roster) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert buttons(roster) == ["✅ P-brief"]
