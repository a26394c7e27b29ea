"""A question left open (a goal to type, Reply under a staff message, a reason for missing a session)
never takes the typed answers of a check-in that opened after it: a "yes" typed to the safety
question pages the clinician as it does with nothing open, and is no goal and no reply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.db.goal_models import Goal
from bot.db.models import Escalation, StaffRole
from bot.db.outreach_models import OutreachReply
from tests.support.inproc import InProcessBot, add_participant, add_staff

MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start
DR, COACH, SAM = 900_001, 900_002, 5_001


async def _enrolled(inbot: InProcessBot) -> None:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, inbot.clock.now())
        coach = await add_staff(s, "coach-ana", COACH, inbot.clock.now())
        coach.role = StaffRole.COACH
        p = await add_participant(s, "P-101", dr, SAM, inbot.clock.now(), checkin_time="09:00")
        p.backup_id = coach.id
        await s.commit()


async def _leave_open(inbot: InProcessBot, what: str) -> None:
    if what == "goal":
        await inbot.say(SAM, "/goals")
        await inbot.press(SAM, "Add a goal")
        assert "Type your goal" in inbot.last_text(SAM)
    elif what == "reply":
        await inbot.say(COACH, "/message P-101 How are you doing today?")
        await inbot.tick()
        await inbot.press(SAM, "Reply")
        assert "Type your reply" in inbot.last_text(SAM)


async def _count(inbot: InProcessBot, model: type) -> int:
    async with inbot.ctx.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("what", ["nothing", "goal", "reply"])
async def test_yes_typed_to_the_safety_question_pages_whatever_was_left_open(inbot: InProcessBot,
                                                                           what: str) -> None:
    await _enrolled(inbot)
    await _leave_open(inbot, what)
    await inbot.say(SAM, "/checkin")
    assert "How is your mood" in inbot.last_text(SAM)
    for label in ("3", "1", "8", "Yes"):
        await inbot.press(SAM, label)
    assert "thoughts of hurting yourself" in inbot.last_text(SAM)
    await inbot.say(SAM, "yes")
    texts = inbot.texts(SAM)
    assert "988" in texts[-2] and "911" in texts[-2]  # the crisis reply
    assert "anything you want your care team to know" in texts[-1]  # the check-in goes on
    assert not any("Saved. Your goal" in t or "passing your reply" in t for t in texts)
    await inbot.tick()
    assert any("Safety alert: URGENT" in t and "P-101" in t for t in inbot.texts(DR))
    assert await _count(inbot, Escalation) == 1
    assert await _count(inbot, Goal) == 0 and await _count(inbot, OutreachReply) == 0
    assert not any("How are you doing" not in t and "P-101 replied" in t for t in inbot.texts(COACH))


async def test_a_checkin_opened_before_the_goal_question_and_resumed_after_it_keeps_its_answers(
        inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/checkin")  # opened first, left open
    inbot.clock.advance(minutes=2)
    await _leave_open(inbot, "goal")
    inbot.clock.advance(minutes=2)
    await inbot.say(SAM, "/checkin")  # resumed after the question
    for label in ("3", "1", "8", "Yes"):
        await inbot.press(SAM, label)
    await inbot.say(SAM, "yes")
    assert "988" in inbot.texts(SAM)[-2]
    await inbot.tick()
    assert any("Safety alert: URGENT" in t for t in inbot.texts(DR))
    assert await _count(inbot, Goal) == 0
