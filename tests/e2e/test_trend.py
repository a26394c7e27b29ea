"""The trend chart over real HTTP with the real `iopbot run` process: a participant answers three
daily check-ins and leaves one (the bot's clock is moved, not waited for), their clinician sends
`/trend ALIAS` and gets a photo, a real PNG that decodes with a point for each answer and a mark
for the miss; another clinician is refused and the refusal is audited; the chart is a disclosure;
the participant sees their own with /mytrend and cannot use /trend."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select

from bot.clock import OffsetFileClock
from bot.db.checkin_models import CHECKIN
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import ActionStatus, AuditEntry, Disclosure, Participant, ScheduledAction, Staff
from bot.sandbox.botapi import BotAPIControl
from bot.services.charts.render import WIDTH_PX, point_counts_of
from tests.support.e2e import BotProcess, Person, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")


def _minutes_until_next_checkin(proc: BotProcess) -> float:
    """Minutes from the bot's now to a few minutes after the next 09:00 in Chicago (past any jitter)."""
    now = OffsetFileClock(proc.clock_file).now().astimezone(CHICAGO)
    day = now.date()
    if datetime(day.year, day.month, day.day, 9, 0, tzinfo=CHICAGO) < now + timedelta(minutes=10):
        day += timedelta(days=1)
    target = datetime(day.year, day.month, day.day, 9, 0, tzinfo=CHICAGO)  # DST-safe
    return (target - now).total_seconds() / 60 + 6  # the jitter is 0-5 minutes


async def _next_checkin(proc: BotProcess, person: Person) -> None:
    """Move the clock to the next morning's check-in and wait for it (a reminder of an unanswered
    one may come first)."""
    proc.move_clock(minutes=_minutes_until_next_checkin(proc))
    for _ in range(5):
        if "Time for your daily check-in" in await person.read_text():
            return
    raise AssertionError("no check-in arrived")


async def _wait_until_marked_sent(db_url: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """The worker marks a row sent after Telegram's answer, which the person may read first: wait
    for the mark before the clock moves on, so the row's sent_at is the day it went out."""
    engine = make_engine(db_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            async with make_sessionmaker(engine)() as s:
                if not (await s.scalars(select(ScheduledAction.id).where(
                        ScheduledAction.kind == CHECKIN, ScheduledAction.status == ActionStatus.CLAIMED))).first():
                    return
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
    raise AssertionError("the check-in was not marked sent")


async def _answer(person: Person, mood: str, craving: str, sleep: str) -> None:
    await person.press(mood)
    assert "cravings" in await person.read_text()
    await person.press(craving)
    assert "hours did you sleep" in await person.read_text()
    await person.say(sleep)
    assert "medication" in await person.read_text()
    await person.press("I don't take any")
    assert "thoughts of hurting yourself" in await person.read_text()
    await person.press("No")
    assert "anything you want your care team to know" in await person.read_text()
    await person.press("Skip")
    assert "Thank you for checking in" in await person.read_text()


async def _photo(control: BotAPIControl, message: dict[str, Any]) -> bytes:
    assert message["kind"] == "photo", message
    return await control.file_bytes(message["photo"]["file_id"])


async def _rows(db_url: str) -> tuple[list[AuditEntry], list[Disclosure], dict[str, int]]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as s:
            audits = list((await s.scalars(select(AuditEntry).where(AuditEntry.action.like("%trend%")))).all())
            disclosures = list((await s.scalars(select(Disclosure).where(Disclosure.kind == "chart"))).all())
            ids = {alias: pid for alias, pid in (await s.execute(select(Participant.alias, Participant.id))).all()}
            ids |= {alias: sid for alias, sid in (await s.execute(select(Staff.alias, Staff.id))).all()}
    finally:
        await engine.dispose()
    return audits, disclosures, ids


async def test_a_clinician_gets_the_trend_as_a_png_and_others_are_refused(
        shared_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-trend")
    other = await enroll_staff(shared_bot, control, "dr-elsewhere")
    sam = await enroll_participant(shared_bot, control, "P-801", "dr-trend")  # Chicago, 09:00

    for answers in (("6", "2", "7.5"), ("5", "3", "6"), None, ("7", "1", "8")):
        await _next_checkin(shared_bot, sam)
        if answers is not None:
            await _answer(sam, *answers)
        else:  # left unanswered: a missed check-in once it expires
            await _wait_until_marked_sent(shared_bot.db_url)

    await clinician.say("/trend P-801")
    message = (await clinician.read())[0]
    png = await _photo(control, message)
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.format == "PNG" and image.width == WIDTH_PX
    counts = point_counts_of(png)
    assert (counts["days"], counts["mood"], counts["craving"], counts["sleep"], counts["missed"]) == (30, 3, 3, 3, 1)
    caption = message["caption"]
    assert caption.startswith("Chart of P-801,") and "Mood: 3 check-ins, 1 missed; last 7, average 6." in caption
    assert "Sleep: 3 nights, average 7.2 hours." in caption

    await other.say("/trend P-801")
    refusal = await other.read_text()
    assert "No participant P-801 on your caseload" in refusal and "This request was logged" in refusal
    await clinician.say("/trend")
    assert "/trend P-801" in await clinician.read_text()  # the usage hint names one of their own

    await sam.say("/mytrend")
    own = (await sam.read())[0]
    assert point_counts_of(await _photo(control, own))["mood"] == 3
    assert own["caption"].startswith("Your chart,") and "P-801" not in own["caption"]
    await sam.say("/trend P-801")
    assert "That command is for staff" in await sam.read_text()

    audits, disclosures, ids = await _rows(shared_bot.db_url)
    seen = {(a.actor, a.action, a.allowed, a.participant_id) for a in audits}
    assert (f"staff:{ids['dr-trend']}", "view:trend", True, ids["P-801"]) in seen
    assert (f"staff:{ids['dr-elsewhere']}", "refused:/trend", False, ids["P-801"]) in seen
    assert (f"participant:{ids['P-801']}", "refused:/trend", False, ids["P-801"]) in seen
    assert sorted((d.recipient, d.participant_id) for d in disclosures) == sorted(
        [(f"staff:{ids['dr-trend']}", ids["P-801"]), (f"participant:{ids['P-801']}", ids["P-801"])])
    assert all(d.at is not None for d in disclosures)
