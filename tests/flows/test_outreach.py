"""The care team reaches out, in process, on SQLite and PostgreSQL: a coach's /message reaches the
participant as "a message from your coach" with Reply and "I'm OK, thanks"; the reply (typed after
Reply, or as Telegram's own reply) goes back to the coach, as a disclosure; another clinician is
refused and audited; a paused or blocked participant is never silently dropped; a crisis sentence
typed as a reply gets the crisis reply and a page and still reaches the coach; after the reply
window a text is an ordinary note; the words are encrypted at rest and never logged."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.db.models import (
    AuditEntry,
    Disclosure,
    Escalation,
    InboundMessage,
    Participant,
    ParticipantStatus,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.db.outreach_models import OutreachMessage, OutreachReply, OutreachStatus
from bot.db.types import configure_encryption
from tests.support.inproc import InProcessBot, add_participant, add_staff

COACH, THERAPIST, OTHER, LEAD, PAT = 910_001, 910_002, 910_003, 910_004, 6_001
WORDS = "Thinking of you today. How did the group go?"
REPLY = "It went better than I expected, thank you"
CRISIS = "i want to kill myself"


async def _team(inbot: InProcessBot, *, status: str = ParticipantStatus.ACTIVE) -> dict[str, int]:
    """A therapist, a coach who is the participant's backup, another clinician, a lead; P-out."""
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        therapist = await add_staff(s, "dr-main", THERAPIST, now)
        coach = await add_staff(s, "coach-ana", COACH, now)
        coach.role = StaffRole.COACH
        other = await add_staff(s, "dr-other", OTHER, now)
        lead = await add_staff(s, "lead-kim", LEAD, now)
        lead.role = StaffRole.LEAD
        pat = await add_participant(s, "P-out", therapist, PAT, now)
        pat.backup_id = coach.id
        pat.status = status
        await s.commit()
        return {"pat": pat.id, "coach": coach.id, "therapist": therapist.id, "other": other.id}


def _with(inbot: InProcessBot, chat: int, *parts: str) -> list[dict[str, Any]]:
    return [m for m in inbot.messages(chat) if all(p in (m.get("visible_text") or "") for p in parts)]


def _buttons(message: dict[str, Any]) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def _rows(inbot: InProcessBot, model: Any, *where: Any) -> list[Any]:
    async with inbot.ctx.sessionmaker() as s:
        return list((await s.scalars(select(model).where(*where))).unique().all())


async def test_a_coachs_message_and_the_reply_round_trip(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await inbot.say(COACH, f"/message P-out {WORDS}")
    assert "On its way to P-out" in inbot.last_text(COACH)
    await inbot.tick()
    (delivered,) = _with(inbot, PAT, "A message from your coach", WORDS)
    assert _buttons(delivered) == ["Reply", "I'm OK, thanks"]
    assert "coach-ana" not in delivered["visible_text"]  # minimum necessary: the role, not a name
    await inbot.press(PAT, "Reply")
    assert "Type your reply to your coach" in inbot.last_text(PAT)
    await inbot.say(PAT, REPLY)
    assert "passing your reply to your coach" in inbot.last_text(PAT)
    await inbot.tick()
    (forwarded,) = _with(inbot, COACH, "P-out replied to your message", REPLY)
    assert _buttons(forwarded) == ["Message P-out"]
    assert not _with(inbot, THERAPIST, REPLY)  # to the one who wrote, nobody else

    # Stored: the message (sent), the reply pointing at the participant's stored words.
    (message,) = await _rows(inbot, OutreachMessage, OutreachMessage.participant_id == ids["pat"])
    assert message.status == OutreachStatus.SENT and message.text == WORDS and message.staff_id == ids["coach"]
    (reply,) = await _rows(inbot, OutreachReply, OutreachReply.message_id == message.id)
    assert reply.forwarded_to_id == ids["coach"] and reply.inbound_message_id is not None
    (inbound,) = await _rows(inbot, InboundMessage, InboundMessage.id == reply.inbound_message_id)
    assert inbound.text == REPLY
    # The reply to the coach is a disclosure; sending is audited; the message itself is not a disclosure.
    disclosures = await _rows(inbot, Disclosure, Disclosure.participant_id == ids["pat"])
    assert [(d.kind, d.recipient) for d in disclosures] == [("outreach_reply", f"staff:{ids['coach']}")]
    actions = {(a.actor, a.action) for a in await _rows(inbot, AuditEntry, AuditEntry.participant_id == ids["pat"])}
    assert (f"staff:{ids['coach']}", "outreach:message") in actions
    assert ("system", f"outreach:reply_forwarded:staff:{ids['coach']}") in actions

    # A second reply, with Telegram's own "reply" to the message, goes the same way.
    injected = inbot.api.inject_message(PAT, "One more thing: thank you", first_name="Sam")
    update = {"update_id": injected["update_id"], "message": {
        **injected["message"], "reply_to_message": {"message_id": delivered["message_id"], "date": 0,
                                                    "chat": injected["message"]["chat"]}}}
    await inbot.feed(update)
    await inbot.tick()
    assert _with(inbot, COACH, "P-out replied to your message", "One more thing")

    # "I'm OK, thanks": answered at once, the buttons go, the coach hears it.
    await inbot.press(PAT, "I'm OK, thanks")
    assert "letting your coach know you're OK" in inbot.last_text(PAT)
    await inbot.tick()
    assert _with(inbot, COACH, "P-out replied to your message", "I'm OK, thanks")
    edited = next(m for m in inbot.messages(PAT) if m["message_id"] == delivered["message_id"])
    assert "You answered: I'm OK, thanks" in edited["visible_text"] and not _buttons(edited)


async def test_another_clinician_is_refused_and_audited(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await inbot.say(OTHER, f"/message P-out {WORDS}")
    refusal = inbot.last_text(OTHER)
    assert "P-out is not on your caseload" in refusal
    await inbot.say(OTHER, f"/message P-nobody {WORDS}")
    assert inbot.last_text(OTHER) == refusal.replace("P-out", "P-nobody")  # no hint of who exists
    await inbot.tick()
    assert not _with(inbot, PAT, WORDS)
    assert not await _rows(inbot, OutreachMessage)
    refused = await _rows(inbot, AuditEntry, AuditEntry.allowed.is_(False))
    assert [(a.actor, a.action, a.participant_id) for a in refused] == [
        (f"staff:{ids['other']}", "refused:/message", ids["pat"]), (f"staff:{ids['other']}", "refused:/message", None)]
    # The "Message P-out" button pressed by someone who may not see them: refused and audited too.
    await inbot.press_data(OTHER, 1, f"om:new:{ids['pat']}")
    assert (await _rows(inbot, AuditEntry, AuditEntry.action == "refused:button:message"))[0].allowed is False
    # A participant typing /message is refused like any staff command.
    await inbot.say(PAT, "/message P-out hi")
    assert "That command is for staff" in inbot.last_text(PAT)
    # A lead may write to anyone in the program; the participant sees "your care team".
    await inbot.say(LEAD, f"/message P-out {WORDS}")
    await inbot.tick()
    assert _with(inbot, PAT, "A message from your care team", WORDS)


async def test_message_asks_for_the_words_once_and_can_be_cancelled(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(THERAPIST, "/message")
    assert "/message P-out How did today go?" in inbot.last_text(THERAPIST)  # usage with their own alias
    await inbot.say(THERAPIST, "/message P-out")
    assert "What would you like to send to P-out?" in inbot.last_text(THERAPIST)
    await inbot.press(THERAPIST, "Cancel")
    assert "Nothing was sent" in inbot.last_text(THERAPIST)
    await inbot.say(THERAPIST, "not for anyone")  # an ordinary text again: the staff help
    await inbot.say(THERAPIST, "/message P-out")
    await inbot.say(THERAPIST, "x" * 3001)
    assert "3001 characters" in inbot.last_text(THERAPIST)
    await inbot.say(THERAPIST, WORDS)
    await inbot.tick()
    assert _with(inbot, PAT, "A message from your therapist", WORDS)
    assert not _with(inbot, PAT, "not for anyone")
    # From /trends: a "Message P-out" button starts the same question.
    await inbot.say(THERAPIST, "/trends P-out")
    await inbot.press(THERAPIST, "Message P-out")
    assert "What would you like to send to P-out?" in inbot.last_text(THERAPIST)
    # Fifteen minutes later the question is closed: the words are not sent.
    inbot.clock.advance(minutes=16)
    await inbot.say(THERAPIST, "late words")
    await inbot.tick()
    assert not _with(inbot, PAT, "late words")


@pytest.mark.parametrize("status", [ParticipantStatus.PAUSED, ParticipantStatus.DISCHARGED])
async def test_a_participant_who_cannot_get_it_is_told_to_the_sender_plainly(inbot: InProcessBot,
                                                                            status: str) -> None:
    await _team(inbot, status=status)
    await inbot.say(COACH, f"/message P-out {WORDS}")
    said = inbot.last_text(COACH)
    assert "I did not send your message to P-out" in said
    assert ("paused the bot" if status == ParticipantStatus.PAUSED else "discharged") in said
    await inbot.tick()
    assert not _with(inbot, PAT, WORDS) and not await _rows(inbot, OutreachMessage)


async def test_paused_or_blocked_between_writing_and_sending_is_told_too(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    inbot.clock.set(inbot.clock.now().replace(hour=3))  # 22:00 in New York: quiet hours
    await inbot.say(COACH, f"/message P-out {WORDS}")
    assert "in their quiet hours, so your message goes at 7:00 AM their time" in inbot.last_text(COACH)
    await inbot.tick()
    assert not _with(inbot, PAT, WORDS)
    async with inbot.ctx.sessionmaker() as s:
        pat = await s.get(Participant, ids["pat"])
        assert pat is not None
        pat.status = ParticipantStatus.PAUSED
        await s.commit()
    await inbot.tick(inbot.clock.now() + timedelta(hours=10))
    assert not _with(inbot, PAT, WORDS)
    assert _with(inbot, COACH, "Your message to P-out was not delivered", "paused the bot")
    # Blocked: Telegram answers 403 when it is sent.
    async with inbot.ctx.sessionmaker() as s:
        pat = await s.get(Participant, ids["pat"])
        assert pat is not None
        pat.status = ParticipantStatus.ACTIVE
        await s.commit()
    inbot.api.block(PAT)
    await inbot.say(THERAPIST, f"/message P-out {WORDS}")
    await inbot.tick()
    await inbot.tick()
    assert _with(inbot, THERAPIST, "Your message to P-out was not delivered", "blocked the bot")


async def test_a_crisis_typed_as_a_reply_gets_the_crisis_reply_a_page_and_reaches_the_coach(
        inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await inbot.say(COACH, f"/message P-out {WORDS}")
    await inbot.tick()
    await inbot.press(PAT, "Reply")
    await inbot.say(PAT, CRISIS)
    assert any("glad you told me" in t for t in inbot.texts(PAT))  # the crisis reply, from the safety gate
    await inbot.tick()
    assert _with(inbot, THERAPIST, "Safety alert", "P-out")  # the usual page, to the assigned clinician
    (forwarded,) = _with(inbot, COACH, "P-out replied to your message", CRISIS)
    assert "The safety check flagged this reply" in forwarded["visible_text"]
    (escalation,) = await _rows(inbot, Escalation, Escalation.participant_id == ids["pat"])
    (reply,) = await _rows(inbot, OutreachReply)
    (inbound,) = await _rows(inbot, InboundMessage, InboundMessage.id == reply.inbound_message_id)
    assert inbound.escalation_id == escalation.id  # stored once, with its alert
    assert len(await _rows(inbot, InboundMessage)) == 1


async def test_after_the_reply_window_a_text_is_an_ordinary_note(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(COACH, f"/message P-out {WORDS}")
    await inbot.tick()
    # Reply tapped, then an hour on something else: the next text is a note, not the reply.
    await inbot.press(PAT, "Reply")
    inbot.clock.advance(minutes=61)
    await inbot.say(PAT, "just a note for later")
    assert "saved this for your care team" in inbot.last_text(PAT)
    await inbot.press(PAT, "Reply")
    inbot.clock.advance(hours=73)  # [outreach] reply_window_hours = 72
    await inbot.say(PAT, REPLY)
    assert "saved this for your care team" in inbot.last_text(PAT)
    await inbot.press(PAT, "Reply")
    assert "too old to reply" in inbot.notices(PAT)[-1]
    await inbot.tick()
    assert not _with(inbot, COACH, REPLY) and not _with(inbot, COACH, "just a note")
    assert not await _rows(inbot, OutreachReply)


async def test_words_are_encrypted_at_rest_and_never_logged(inbot: InProcessBot, db_url: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    configure_encryption("outreach test key")
    try:
        await _team(inbot)
        await inbot.say(COACH, f"/message P-out {WORDS}")
        await inbot.tick()
        await inbot.press(PAT, "Reply")
        await inbot.say(PAT, REPLY)
        await inbot.tick()
        async with inbot.ctx.sessionmaker() as s:
            raw = (await s.execute(text("SELECT text FROM outreach_messages"))).scalar_one()
        assert raw.startswith("enc:") and WORDS not in raw
    finally:
        configure_encryption("")
    # The bot's own log (libraries' debug output of SQL parameters is not the bot's to write).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert WORDS not in logged and REPLY not in logged and "coach-ana" not in logged


async def test_the_outbox_rows_carry_ids_only(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(COACH, f"/message P-out {WORDS}")
    await inbot.tick()
    await inbot.press(PAT, "Reply")
    await inbot.say(PAT, REPLY)
    await inbot.tick()
    rows = await _rows(inbot, ScheduledAction, ScheduledAction.kind.like("outreach%"))
    assert {r.kind for r in rows} == {"outreach_message", "outreach_reply"}
    assert all(WORDS not in str(r.payload) and REPLY not in str(r.payload) for r in rows)


async def test_a_reply_to_someone_who_left_goes_to_the_participants_clinician(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await inbot.say(COACH, f"/message P-out {WORDS}")
    await inbot.tick()
    async with inbot.ctx.sessionmaker() as s:
        coach = await s.get(Staff, ids["coach"])
        assert coach is not None
        coach.active = False  # `iopbot staff deactivate`
        await s.commit()
    await inbot.press(PAT, "Reply")
    await inbot.say(PAT, REPLY)
    await inbot.tick()
    assert _with(inbot, THERAPIST, "P-out replied to a message from coach-ana", REPLY)
    (disclosure,) = await _rows(inbot, Disclosure, Disclosure.kind == "outreach_reply")
    assert disclosure.recipient == f"staff:{ids['therapist']}"


async def test_during_an_open_alert_a_message_goes_at_once_even_in_quiet_hours(inbot: InProcessBot) -> None:
    await _team(inbot)
    inbot.clock.set(inbot.clock.now().replace(hour=3))  # 22:00 in New York: quiet hours
    await inbot.say(PAT, CRISIS)
    await inbot.tick()
    assert await _rows(inbot, Escalation)  # unresolved
    await inbot.say(THERAPIST, f"/message P-out {WORDS}")
    said = inbot.last_text(THERAPIST)
    assert "open safety alert, so your message goes now" in said and "7:00 AM" not in said
    await inbot.tick()
    assert _with(inbot, PAT, "A message from your therapist", WORDS)


async def _replied(inbot: InProcessBot, ids: dict[str, int], *, gone: tuple[str, ...] = (),
                   unassign_coach: bool = False) -> None:
    """The coach writes, then `gone` staff are deactivated (and the coach maybe taken off the
    participant), then the participant replies."""
    await inbot.say(COACH, f"/message P-out {WORDS}")
    await inbot.tick()
    async with inbot.ctx.sessionmaker() as s:
        for name in gone:
            staff = await s.scalar(select(Staff).where(Staff.alias == name))
            assert staff is not None
            staff.active = False
        if unassign_coach:
            pat = await s.get(Participant, ids["pat"])
            assert pat is not None
            pat.backup_id = None
        await s.commit()
    await inbot.press(PAT, "Reply")
    await inbot.say(PAT, REPLY)
    await inbot.tick()


async def test_a_reply_nobody_on_the_team_can_take_goes_to_a_lead(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await _replied(inbot, ids, gone=("coach-ana", "dr-main"))
    assert _with(inbot, LEAD, "P-out replied to a message from coach-ana", REPLY)
    (reply,) = await _rows(inbot, OutreachReply)
    assert reply.forwarded_at is not None


async def test_a_reply_nobody_can_take_is_said_plainly_to_the_participant(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await _replied(inbot, ids, gone=("coach-ana", "dr-main", "lead-kim"))
    told = inbot.last_text(PAT)
    assert "couldn't pass your reply to anyone" in told and "988" in told
    assert not _with(inbot, OTHER, REPLY) and not _with(inbot, COACH, "replied")
    (reply,) = await _rows(inbot, OutreachReply)
    assert reply.forwarded_at is None


async def test_a_reply_goes_to_the_clinician_when_the_writer_may_no_longer_see_them(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await _replied(inbot, ids, unassign_coach=True)  # the coach is still active, but not on P-out's team
    assert not _with(inbot, COACH, "replied")
    assert _with(inbot, THERAPIST, "P-out replied to a message from coach-ana", REPLY)


async def test_a_reply_row_handled_twice_forwards_once(inbot: InProcessBot) -> None:
    ids = await _team(inbot)
    await _replied(inbot, ids)
    assert len(_with(inbot, COACH, "P-out replied", REPLY)) == 1
    async with inbot.ctx.sessionmaker() as s:  # as if the row were claimed again after it was sent
        row = await s.scalar(select(ScheduledAction).where(ScheduledAction.kind == "outreach_reply"))
        assert row is not None
        row.status, row.due_at = "pending", inbot.clock.now()
        await s.commit()
    await inbot.tick()
    assert len(_with(inbot, COACH, "P-out replied", REPLY)) == 1
    assert len(await _rows(inbot, Disclosure, Disclosure.kind == "outreach_reply")) == 1


async def test_the_alias_is_found_in_any_case(inbot: InProcessBot) -> None:
    await _team(inbot)
    await inbot.say(COACH, f"/message p-OUT {WORDS}")
    assert "On its way to P-out" in inbot.last_text(COACH)
    await inbot.tick()
    assert _with(inbot, PAT, "A message from your coach", WORDS)
