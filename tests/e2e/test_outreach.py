"""The care team reaches out, end to end over HTTP with the real `iopbot run` process, on SQLite and
PostgreSQL: a coach's /message and the participant's reply round-trip; another clinician asking
for that participant is refused and audited; a crisis sentence typed as a reply gets the crisis
reply and the usual page, and still reaches the coach; /techhelp tells the participant's clinician
when there is no session today."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import AuditEntry, Disclosure, Participant
from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, buttons, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e

WORDS = "Checking in after yesterday. How are you doing today?"
REPLY = "A bit tired but OK. The breathing exercise helped."
CRISIS = "i want to kill myself"


async def _rows(db_url: str, statement: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return list((await session.scalars(statement)).all())
    finally:
        await engine.dispose()


async def test_a_coachs_message_and_the_reply_round_trip_and_another_clinician_is_refused(
        shared_bot: BotProcess, control: BotAPIControl) -> None:
    therapist = await enroll_staff(shared_bot, control, "dr-reach")
    coach = await enroll_staff(shared_bot, control, "coach-reach", role="coach")
    other = await enroll_staff(shared_bot, control, "dr-elsewhere")
    # No quiet hours: the message goes at once whatever the hour in Chicago when the suite runs
    # (the quiet-hours case has its own test, tests/flows/test_outreach.py).
    sam = await enroll_participant(shared_bot, control, "P-reach", "dr-reach", backup="coach-reach",
                                   quiet_hours=False)

    await coach.say(f"/message P-reach {WORDS}")
    assert "On its way to P-reach" in await coach.read_text()
    delivered = await sam.wait_for_message("A message from your coach")
    assert WORDS in delivered["visible_text"] and "coach-reach" not in delivered["visible_text"]
    assert buttons(delivered) == ["Reply", "I'm OK, thanks"]
    await sam.press("Reply")
    await sam.wait_for_message("Type your reply to your coach")
    await sam.say(REPLY)
    await sam.wait_for_message("passing your reply to your coach")
    forwarded = await coach.wait_for_message("P-reach replied to your message")
    assert REPLY in forwarded["visible_text"] and buttons(forwarded) == ["Message P-reach"]

    # Another clinician asks for that participant: refused, told nothing, audited.
    await other.say(f"/message P-reach {WORDS}")
    refusal = await other.read_text()
    assert "P-reach is not on your caseload" in refusal
    (pid,) = await _rows(shared_bot.db_url, select(Participant.id).where(Participant.alias == "P-reach"))
    refused = await _rows(shared_bot.db_url, select(AuditEntry).where(
        AuditEntry.participant_id == pid, AuditEntry.action == "refused:/message"))
    assert len(refused) == 1 and refused[0].allowed is False and refused[0].actor.startswith("staff:")
    assert sum(WORDS in (m.get("visible_text") or "") for m in await sam.all_messages()) == 1
    # Forwarding the reply was a disclosure to the coach.
    disclosures = await _rows(shared_bot.db_url, select(Disclosure).where(
        Disclosure.participant_id == pid, Disclosure.kind == "outreach_reply"))
    assert len(disclosures) == 1

    # A crisis sentence typed as a reply: the crisis reply, the usual page, and the coach still gets it.
    await sam.press("Reply")
    await sam.wait_for_message("Type your reply to your coach")
    await sam.say(CRISIS)
    await sam.wait_for_message("glad you told me")  # the crisis reply (the prompt names 988 too)
    await therapist.wait_for_message("Safety alert: URGENT")
    flagged = await coach.wait_for_message(CRISIS)
    assert "P-reach replied to your message" in flagged["visible_text"]
    assert "The safety check flagged this reply" in flagged["visible_text"]


async def test_techhelp_tells_the_clinician_when_there_is_no_session_today(
        shared_bot: BotProcess, control: BotAPIControl) -> None:
    clinician = await enroll_staff(shared_bot, control, "dr-tech")
    pat = await enroll_participant(shared_bot, control, "P-tech-e2e", "dr-tech")
    await pat.say("/techhelp")
    steps = (await pat.read())[0]
    assert "Can't get into your session?" in steps["visible_text"]
    assert buttons(steps) == ["Tell my facilitator I can't connect"]
    await pat.press("Tell my facilitator")
    notice = await clinician.wait_for_message("P-tech-e2e can't connect")
    assert "no session of theirs in the calendar today" in notice["visible_text"]
    await pat.wait_for_message("Your care team has been told you can't connect")
