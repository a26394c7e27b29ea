"""Every text a participant sends is assessed (CLINICAL.md, "Distress" 1), in process, on SQLite and
PostgreSQL: an edited message (answered and escalated like a new one, and never taken as a new
answer), a photo's caption, forwarded text, the words after /start (an invite token is not words),
and answers typed inside a check-in and an exercise. The alert names what was found. "I've let
your care team know" follows once the page was delivered (the scheduler tick).

The phrases are ones the rules catch today; what the alert must show is asked of the rules
themselves, so these tests do not break when a rule's construct label changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.db.checkin_models import CheckinAnswer
from bot.db.content_models import ExerciseAnswer
from bot.db.models import Escalation, InboundMessage
from bot.safety.levels import Level
from tests.support.inproc import InProcessBot, add_participant, add_staff

MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start
DR = 900_201
SAM, KIM, LEE, ANA = 5_201, 5_202, 5_203, 5_204
ACT = "emptied my pill bottle an hour ago"  # an act just done, in plain words: imminent
CRISIS = "i want to kill myself"  # urgent


async def _enroll(inbot: InProcessBot, *chats: int, **kwargs: Any) -> None:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-every", DR, inbot.clock.now())
        for chat in chats:
            await add_participant(s, f"P-{chat}", dr, chat, inbot.clock.now(), **kwargs)
        await s.commit()


async def _escalations(inbot: InProcessBot) -> dict[str, Escalation]:
    async with inbot.ctx.sessionmaker() as s:
        return {e.participant.alias: e for e in (await s.scalars(select(Escalation))).unique().all()}


def _message(chat: int, message_id: int, **content: Any) -> dict[str, Any]:
    return {"message_id": message_id, "date": 1_772_460_000, "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "Sam", "language_code": "en"}, **content}


TOLD = "I've let your care team know"


async def test_an_edited_message_is_assessed_answered_and_escalated_like_a_new_one(inbot: InProcessBot) -> None:
    await _enroll(inbot, SAM, checkin_time="20:00")
    said = inbot.api.inject_message(SAM, "see you at group tomorrow", first_name="Sam")
    await inbot.feed({"update_id": said["update_id"], "message": said["message"]})
    assert "saved this for your care team" in inbot.last_text(SAM)
    before = len(inbot.messages(SAM))

    edit = inbot.api.edit_message(SAM, said["message"]["message_id"], ACT)
    await inbot.feed({"update_id": edit["update_id"], "edited_message": edit["edited_message"]})
    [crisis] = inbot.texts(SAM)[before:]  # nothing else: an edit is not a new note or answer
    assert crisis.startswith("Please call 911 now") and "988" in crisis  # imminent leads with 911

    escalation = (await _escalations(inbot))[f"P-{SAM}"]
    assert escalation.level == Level.IMMINENT and escalation.source == "edited_message"
    async with inbot.ctx.sessionmaker() as s:
        stored = (await s.scalars(select(InboundMessage).where(InboundMessage.escalation_id == escalation.id))).all()
    assert [(m.text, m.telegram_message_id) for m in stored] == [(ACT, said["message"]["message_id"])]

    await inbot.tick()
    assert TOLD in inbot.last_text(SAM)
    alert = inbot.last_text(DR)
    # What was found, in the clinician's words, never the participant's.
    assert "Safety alert: IMMINENT" in alert and "Found: act in progress or just done: ingestion" in alert
    assert "pill bottle" not in alert  # the participant is not quoted (quote_in_alerts is off)

    # The same edit delivered twice (Telegram retries) is handled once.
    await inbot.feed({"update_id": edit["update_id"], "edited_message": edit["edited_message"]})
    assert len(inbot.texts(SAM)) == before + 2


async def test_captions_forwarded_text_and_words_after_start_are_assessed(inbot: InProcessBot) -> None:
    await _enroll(inbot, SAM, KIM, LEE, ANA, checkin_time="20:00")
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 10, "height": 10}]
    await inbot.feed({"update_id": 9_001, "message": _message(SAM, 1, photo=photo, caption=CRISIS)})
    await inbot.feed({"update_id": 9_002, "message": _message(KIM, 1, text=CRISIS, forward_origin={
        "type": "hidden_user", "sender_user_name": "me, last night", "date": 1_772_400_000})})
    # Typed by an enrolled participant: the words after /start are theirs, not an invite token.
    await inbot.say(LEE, f"/start {CRISIS}")
    # A bare invite link is not words: no crisis reply, only what /start says to an enrolled person.
    await inbot.say(ANA, "/start Zx9_Qm2-Lk8vTt3RbYw0PnHs4JcUe7Aa")
    await inbot.tick()

    for chat in (SAM, KIM, LEE):
        texts = inbot.texts(chat)
        assert any("988" in t and "911" in t for t in texts), (chat, texts)
        assert any(TOLD in t for t in texts), (chat, texts)
    assert "I can only read text" not in "\n".join(inbot.texts(SAM))  # its caption was read
    # Words typed after /start are not a broken link: the crisis reply is not followed by one.
    assert not any("This link doesn't work" in t for t in inbot.texts(LEE)), inbot.texts(LEE)
    assert not any("988" in t for t in inbot.texts(ANA)), inbot.texts(ANA)
    escalations = await _escalations(inbot)
    assert sorted(escalations) == [f"P-{SAM}", f"P-{KIM}", f"P-{LEE}"]
    assert all(e.level == Level.URGENT for e in escalations.values())
    async with inbot.ctx.sessionmaker() as s:
        words = {m.text for m in (await s.scalars(select(InboundMessage))).all()}
    assert words == {CRISIS}  # stored without "/start"; the invite-shaped text is not stored as risk


async def test_answers_typed_inside_a_checkin_and_an_exercise_are_assessed(inbot: InProcessBot) -> None:
    await _enroll(inbot, SAM, KIM, checkin_time="10:00")
    await inbot.tick()
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    assert "How is your mood" in inbot.last_text(SAM)
    await inbot.press(SAM, "3")
    await inbot.say(SAM, "1")  # typed, like every answer below that takes text
    await inbot.press(SAM, "8")
    await inbot.press(SAM, "Yes")  # medication
    await inbot.press(SAM, "No")  # the safety question: what they type next says otherwise
    assert "anything you want your care team to know" in inbot.last_text(SAM)
    await inbot.say(SAM, CRISIS)
    texts = inbot.texts(SAM)
    assert any("988" in t and "911" in t for t in texts[-2:]), texts[-2:]
    assert "Thank you for checking in" in "\n".join(texts[-2:])  # the check-in took it as its answer
    await inbot.tick()
    assert TOLD in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        note = await s.scalar(select(CheckinAnswer).where(CheckinAnswer.question_id == "note"))
    assert note is not None and note.value_text == CRISIS

    # An exercise's typed answer; then an edit of an answer is not a second answer.
    await inbot.say(KIM, "/skills")
    await inbot.press(KIM, "Thought record")
    await inbot.press(KIM, "I have one")
    assert "What happened?" in inbot.last_text(KIM)
    said = inbot.api.inject_message(KIM, "My boss and I argued at work.", first_name="Kim")
    await inbot.feed({"update_id": said["update_id"], "message": said["message"]})
    assert "What did you feel?" in inbot.last_text(KIM)
    count = len(inbot.messages(KIM))
    edit = inbot.api.edit_message(KIM, said["message"]["message_id"], "My boss and I argued again.")
    await inbot.feed({"update_id": edit["update_id"], "edited_message": edit["edited_message"]})
    assert len(inbot.messages(KIM)) == count  # not flagged: nothing said, the exercise did not move on
    await inbot.say(KIM, ACT)  # typed as the answer to "What did you feel?"
    assert inbot.texts(KIM)[count].startswith("Please call 911 now")
    await inbot.tick()
    assert TOLD in inbot.last_text(KIM)

    escalations = await _escalations(inbot)
    assert escalations[f"P-{SAM}"].level == Level.URGENT
    assert escalations[f"P-{KIM}"].level == Level.IMMINENT
    async with inbot.ctx.sessionmaker() as s:
        answers = {a.key: a.value_text for a in (await s.scalars(select(ExerciseAnswer))).all()}
    assert "My boss and I argued at work." in answers.values()
    assert "My boss and I argued again." not in answers.values()
