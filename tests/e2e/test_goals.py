"""Goals over real HTTP with the real `iopbot run` process: a participant adds a goal with /goals;
the weekly prompt arrives on Friday after their check-in time in their zone (the bot's clock is
moved, not waited for), two weeks running; they rate with buttons and a typed line; their
clinician's /goal ALIAS shows the trajectory; another clinician is refused and that is audited;
a crisis sentence typed as a goal gets the crisis reply and pages, and is not kept as a goal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import OffsetFileClock
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.goal_models import Goal
from bot.db.models import AuditEntry, Participant, Staff
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess, Person, buttons, enroll_participant, enroll_staff, running

pytestmark = pytest.mark.e2e

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
async def goals_bot(tmp_path_factory: pytest.TempPathFactory, botapi: FakeBotAPI, module_db_url: str,
                    control: BotAPIControl) -> AsyncIterator[BotProcess]:
    # The prompt two hours after the 09:00 check-in: when the clock jumps to it, that day's
    # check-in is past its grace period and stays out of the chat, so the goal buttons are the newest.
    proc = BotProcess(tmp_path_factory.mktemp("bot"), botapi.base_url or "", module_db_url,
                      extra_config='[goals]\nenabled = true\nday = "friday"\nminutes_after_checkin = 120\n')
    async with running(proc, control):
        yield proc


def _minutes_until_next_prompt(proc: BotProcess) -> float:
    """Minutes from the bot's now to just after the next Friday 11:00 in Chicago (past any jitter)."""
    now = OffsetFileClock(proc.clock_file).now().astimezone(CHICAGO)
    day = now.date() + timedelta(days=(4 - now.weekday()) % 7)
    target = datetime(day.year, day.month, day.day, 11, 0, tzinfo=CHICAGO)  # DST-safe
    if target < now + timedelta(minutes=10):
        day += timedelta(days=7)
        target = datetime(day.year, day.month, day.day, 11, 0, tzinfo=CHICAGO)
    return (target - now).total_seconds() / 60 + 6  # the jitter is 0-5 minutes


async def _rows(db_url: str) -> tuple[list[AuditEntry], list[Goal], dict[str, int]]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as s:
            audits = list((await s.scalars(select(AuditEntry).where(AuditEntry.action.like("%goal%")))).all())
            goals = list((await s.scalars(select(Goal).order_by(Goal.id))).all())
            ids = {alias: pid for alias, pid in (await s.execute(select(Participant.alias, Participant.id))).all()}
            ids |= {alias: sid for alias, sid in (await s.execute(select(Staff.alias, Staff.id))).all()}
    finally:
        await engine.dispose()
    return audits, goals, ids


async def _wait_new(person: Person, contains: str, after: int, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
    """The first message after the first `after` of the chat that shows `contains` (an earlier week's
    message with the same words does not count)."""
    deadline = time.monotonic() + timeout
    while True:
        for message in (await person.all_messages())[after:]:
            if contains in (message.get("visible_text") or ""):
                return message
        if time.monotonic() > deadline:
            raise AssertionError(f"no new message shows {contains!r} within {timeout}s")
        await asyncio.sleep(0.05)


async def _rate_this_week(proc: BotProcess, sam: Person, value: str, line: str | None) -> None:
    before = len(await sam.all_messages())
    proc.move_clock(minutes=_minutes_until_next_prompt(proc))
    prompt = await _wait_new(sam, "Your goals this week", before)
    words = prompt["visible_text"]
    assert "Walk 10 minutes a day" in words and "0 is not at all, 10 is fully" in words
    assert buttons(prompt) == [str(n) for n in range(11)] + ["Skip"]
    await sam.press(value)
    await _wait_new(sam, "Want to add a few words about Walk 10 minutes a day", before)
    if line is None:
        await sam.press("Skip")
    else:
        await sam.say(line)
    await _wait_new(sam, "Your answers are saved for your care team", before)


async def test_a_crisis_typed_as_a_goal_gets_the_crisis_reply_and_pages(goals_bot: BotProcess,
                                                                        control: BotAPIControl) -> None:
    clinician = await enroll_staff(goals_bot, control, "dr-goals-2")
    sam = await enroll_participant(goals_bot, control, "P-952", "dr-goals-2")

    await sam.say("/goals")
    await sam.wait_for_message("You have no goals yet")
    await sam.press("Add a goal")
    await sam.wait_for_message("Type your goal in a few words")
    await sam.say("I want to kill myself tonight, I have the pills here")
    crisis = await sam.wait_for_message("988")
    assert "911" in crisis["visible_text"]
    alert = await clinician.wait_for_message("Safety alert: IMMINENT")
    assert "P-952" in alert["visible_text"]
    assert not any("Saved. Your goal" in (m.get("visible_text") or "") for m in await sam.all_messages())
    _, goals, ids = await _rows(goals_bot.db_url)
    assert [g for g in goals if g.participant_id == ids["P-952"]] == []


# After the crisis test: this one moves the bot's clock weeks ahead (invites are issued at the real time).
async def test_goal_prompt_rating_and_the_clinicians_trajectory(goals_bot: BotProcess,
                                                                control: BotAPIControl) -> None:
    clinician = await enroll_staff(goals_bot, control, "dr-goals")
    other = await enroll_staff(goals_bot, control, "dr-elsewhere")
    sam = await enroll_participant(goals_bot, control, "P-951", "dr-goals")  # Chicago, check-in 09:00

    await sam.say("/goals")
    empty = await sam.wait_for_message("You have no goals yet")
    assert "Every Friday" in empty["visible_text"] and buttons(empty) == ["➕ Add a goal"]
    await sam.press("Add a goal")
    await sam.wait_for_message("Type your goal in a few words")
    await sam.say("Walk 10 minutes a day")
    await sam.wait_for_message("Saved. Your goal: Walk 10 minutes a day")

    await _rate_this_week(goals_bot, sam, "6", "Walked 4 days, rain on the others")
    await _rate_this_week(goals_bot, sam, "8", None)

    await clinician.say("/goal P-951")
    view = await clinician.wait_for_message("Goals: P-951")
    assert "1. Walk 10 minutes a day: 6 → 8 (last: today)" in view["visible_text"]
    assert "last note: “Walked 4 days, rain on the others”" in view["visible_text"]
    assert buttons(view) == ["✏️ Change 1", "✅ Done 1", "➕ Add a goal"]

    await other.say("/goal P-951")
    refused = await other.wait_for_message("No participant P-951 on your caseload")
    assert "Walk" not in refused["visible_text"]
    audits, goals, ids = await _rows(goals_bot.db_url)
    seen = {(a.actor, a.action, a.participant_id, a.allowed) for a in audits}
    assert (f"staff:{ids['dr-goals']}", "view:goals", ids["P-951"], True) in seen
    assert (f"staff:{ids['dr-elsewhere']}", "refused:/goal", ids["P-951"], False) in seen
    assert [(g.text, g.status, g.created_by) for g in goals if g.participant_id == ids["P-951"]] == [
        ("Walk 10 minutes a day", "open", f"participant:{ids['P-951']}")]
    log = goals_bot.log_text()
    assert "goal progress rows" in log, log[-3000:]
    assert "Walk 10 minutes" not in log and "rain on the others" not in log  # ids in logs, never words
