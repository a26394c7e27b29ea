"""The daily check-in as a participant and their clinician live it, in process, on SQLite and
PostgreSQL: it arrives at their local time, buttons and typed answers work, a stale button is
refused, a "yes" to the safety question gets help on screen and pages the clinician, the run
survives a restart, an unanswered check-in is nudged once and then counts as missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db.checkin_models import CheckinAnswer, FlowRun
from bot.db.models import ActionStatus, Participant, ParticipantEvent, ScheduledAction
from bot.services.scheduling.status import render, schedule_status
from tests.support.inproc import InProcessBot, add_participant, add_staff

MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start
DR, SAM = 900_001, 5_001


async def _enrolled(inbot: InProcessBot, **kwargs: object) -> int:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, inbot.clock.now())
        p = await add_participant(s, "P-101", dr, SAM, inbot.clock.now(), **kwargs)  # type: ignore[arg-type]
        await s.commit()
        return p.id


async def _row(inbot: InProcessBot, key: str) -> ScheduledAction:
    async with inbot.ctx.sessionmaker() as s:
        row = await s.scalar(select(ScheduledAction).where(ScheduledAction.key == key))
        assert row is not None, key
        return row


async def test_checkin_arrives_at_local_time_and_is_answered(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    await inbot.tick(MONDAY_9AM_NY + timedelta(minutes=59))
    assert inbot.messages(SAM) == []  # 09:59 in New York: not yet
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    first = inbot.messages(SAM)
    assert len(first) == 1
    assert "Time for your daily check-in" in first[0]["visible_text"]
    assert "1/6" in first[0]["visible_text"] and "How is your mood" in first[0]["visible_text"]
    labels = [b["text"] for row in first[0]["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == [str(n) for n in range(11)]

    await inbot.press(SAM, "6")
    assert "→ 6" in inbot.messages(SAM)[0]["visible_text"]  # the answered question, without buttons
    assert inbot.messages(SAM)[0]["reply_markup"] is None
    assert "cravings" in inbot.last_text(SAM)
    await inbot.say(SAM, "2")  # typing the number works as well as the button
    assert "hours did you sleep" in inbot.last_text(SAM)
    await inbot.say(SAM, "25")  # out of range: said plainly, the question stays
    assert "Please type a number from 0 to 24" in inbot.last_text(SAM)
    await inbot.say(SAM, "6,5 hours")
    assert "medication" in inbot.last_text(SAM)
    await inbot.press(SAM, "I don't take any")
    assert "thoughts of hurting yourself" in inbot.last_text(SAM)
    await inbot.press(SAM, "No")
    assert "anything you want your care team to know" in inbot.last_text(SAM)
    await inbot.say(SAM, "Group helped today.")
    assert "Thank you for checking in" in inbot.last_text(SAM)

    async with inbot.ctx.sessionmaker() as s:
        answers = {a.question_id: a for a in (await s.scalars(select(CheckinAnswer))).all()}
    assert answers["mood"].value_number == 6 and answers["craving"].value_number == 2
    assert answers["sleep_hours"].value_number == 6.5
    assert answers["medication"].value_choice == "not_prescribed" and answers["safety"].value_choice == "no"
    assert answers["note"].value_text == "Group helped today."
    row = await _row(inbot, f"checkin:{pid}:2026-03-02")
    assert row.status == ActionStatus.ANSWERED
    assert row.intended_at == row.due_at == MONDAY_9AM_NY + timedelta(hours=1)
    assert row.sent_at is not None and row.answered_at is not None
    nudge = await _row(inbot, f"checkin_nudge:{pid}:2026-03-02")
    assert nudge.status == ActionStatus.CANCELLED  # answered: no reminder
    count = len(inbot.messages(SAM))
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=5))
    assert len(inbot.messages(SAM)) == count


async def _answer_until_safety(inbot: InProcessBot) -> None:
    await inbot.press(SAM, "3")
    await inbot.press(SAM, "1")
    await inbot.press(SAM, "8")
    await inbot.press(SAM, "Yes")  # medication
    assert "thoughts of hurting yourself" in inbot.last_text(SAM)


async def test_yes_to_the_safety_question_gets_help_at_once_and_pages_the_clinician(inbot: InProcessBot) -> None:
    await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    await _answer_until_safety(inbot)
    await inbot.press(SAM, "Yes")
    texts = inbot.texts(SAM)
    assert "911" in texts[-2] and "988" in texts[-2]
    assert "anything you want your care team to know" in texts[-1]  # the check-in goes on
    assert not any("I've let your care team know" in t for t in texts)  # not before a page was delivered
    await inbot.tick()
    alert = inbot.last_text(DR)
    assert "Safety alert: URGENT" in alert and "P-101" in alert
    assert "I've let your care team know" in inbot.last_text(SAM)  # now it is true
    await inbot.say(SAM, "skip")  # typing the Skip button's label skips, like the button
    assert "Thank you for checking in" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        run = await s.scalar(select(FlowRun))
        assert run is not None and run.level >= 2
        note = await s.scalar(select(CheckinAnswer).where(CheckinAnswer.question_id == "note"))
        assert note is not None and note.value_text is None


async def test_stale_buttons_are_refused_and_the_run_survives_a_restart(
        inbot: InProcessBot, bot_settings: object, api: object) -> None:
    await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    first = inbot.messages(SAM)[0]
    mood_button = first["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await inbot.press(SAM, "5")
    await inbot.press_data(SAM, first["message_id"], mood_button)  # the old mood question, again
    assert inbot.notices(SAM)[-1] == "This question is already answered or closed."
    assert "cravings" in inbot.last_text(SAM)  # nothing moved

    # The bot restarts: the participant carries on where they were, with the same buttons.
    await inbot.close()
    restarted = await InProcessBot.start(bot_settings, api, inbot.clock)  # type: ignore[arg-type]
    try:
        await restarted.press(SAM, "0")
        assert "hours did you sleep" in restarted.last_text(SAM)
        await restarted.say(SAM, "/checkin")
        assert "still open" in restarted.last_text(SAM) and "hours did you sleep" in restarted.last_text(SAM)
    finally:
        await restarted.close()
        inbot.running = restarted.running  # the fixture closes it again harmlessly


async def test_text_that_does_not_answer_the_question_is_kept_as_a_note(inbot: InProcessBot) -> None:
    await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    await inbot.say(SAM, "I had a long night")
    assert "saved this for your care team" in inbot.last_text(SAM)
    await inbot.press(SAM, "4")  # the mood buttons still work
    assert "cravings" in inbot.last_text(SAM)


async def test_checkin_done_early_with_the_command_is_not_sent_again(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    await inbot.say(SAM, "/checkin")  # 09:00, an hour before the scheduled time
    assert "How is your mood" in inbot.last_text(SAM)
    for label in ("7", "0", "7", "Yes", "No", "Skip"):
        await inbot.press(SAM, label)
    assert "Thank you for checking in" in inbot.last_text(SAM)
    await inbot.say(SAM, "/checkin")
    assert "already done today's check-in" in inbot.last_text(SAM)
    count = len(inbot.messages(SAM))
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1, minutes=1))
    assert len(inbot.messages(SAM)) == count
    row = await _row(inbot, f"checkin:{pid}:2026-03-02")
    assert row.status == ActionStatus.ANSWERED and row.sent_at is None


async def test_unanswered_checkins_get_one_nudge_then_count_as_missed_and_the_clinician_is_told(
        inbot: InProcessBot) -> None:
    c = inbot.ctx.settings.checkin
    assert (c.nudge_after_hours, c.expire_hours, c.notify_after_misses) == (3.0, 12.0, 3)
    pid = await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    start = MONDAY_9AM_NY + timedelta(hours=1)
    for day in range(3):
        sent_at = start + timedelta(days=day)
        await inbot.tick(sent_at)
        assert "Time for your daily check-in" in inbot.last_text(SAM)
        if day == 0:
            await inbot.press(SAM, "5")  # started, then left: still a miss
        await inbot.tick(sent_at + timedelta(hours=2, minutes=59))
        assert "gentle reminder" not in inbot.last_text(SAM)
        await inbot.tick(sent_at + timedelta(hours=3))
        nudge = inbot.last_text(SAM)
        assert "gentle reminder" in nudge and ("cravings" in nudge if day == 0 else "How is your mood" in nudge)
        await inbot.tick(sent_at + timedelta(hours=12))  # expired: missed
        staff_messages = inbot.texts(DR)
        if day < 2:
            assert staff_messages == []
    assert inbot.texts(DR) == ["P-101 has not answered the last 3 daily check-ins. You may want to reach out."]
    assert len(inbot.texts(SAM)) == 3 * 2 + 1  # three check-ins, three nudges, one answered question shown
    # An old button of an expired check-in does nothing.
    await inbot.press(SAM, "7")
    assert inbot.notices(SAM)[-1] == "This question is already answered or closed."
    # Answering the next one breaks the run of misses: no further notice at the 4th day.
    await inbot.tick(start + timedelta(days=3))
    for label in ("7", "0", "7", "Yes", "No", "Skip"):
        await inbot.press(SAM, label)
    await inbot.tick(start + timedelta(days=3, hours=13))
    assert len(inbot.texts(DR)) == 1
    async with inbot.ctx.sessionmaker() as s:
        statuses = [r.status for r in (await s.scalars(
            select(ScheduledAction).where(ScheduledAction.kind == "checkin", ScheduledAction.participant_id == pid)
            .order_by(ScheduledAction.intended_at))).all()]
    assert statuses[:4] == ["sent", "sent", "sent", "answered"]
    async with inbot.ctx.sessionmaker() as s:
        status = await schedule_status(s, inbot.clock.now(), "America/New_York", 12.0)
    assert (status.checkins_answered, status.checkins_delivered, status.checkins_open) == (1, 4, 0)
    assert status.response_rate == 0.25
    assert "25.0% (1 answered of 4 delivered and closed" in render(status)


async def test_a_low_mood_is_recorded_as_a_concern_with_a_supportive_reply_and_no_page(
        inbot: InProcessBot) -> None:
    await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    for label in ("1", "9", "5", "No", "No", "Skip"):
        await inbot.press(SAM, label)
    texts = inbot.texts(SAM)
    assert "Thank you for checking in" in texts[-2] and "988" in texts[-1]
    await inbot.tick()
    assert inbot.texts(DR) == []  # concern: shown in the caseload, nobody is paged
    async with inbot.ctx.sessionmaker() as s:
        run = await s.scalar(select(FlowRun))
        assert run is not None and run.level == 1
        assert "trigger:low_mood" in run.reasons and "trigger:high_craving" in run.reasons


async def test_after_blocking_the_bot_writing_again_brings_the_check_ins_back(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot, checkin_time="10:00")
    await inbot.tick()
    inbot.api.block(SAM, notify=False)
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=1))  # Monday's check-in: Telegram answers 403
    async with inbot.ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None and participant.unreachable_at is not None
    assert inbot.messages(SAM) == []
    # A post in their cohort's group says nothing about the private chat: still blocked.
    await inbot.feed({"update_id": 990_001, "message": {
        "message_id": 990_001, "date": 0, "chat": {"id": -100_777, "type": "supergroup", "title": "Cohort"},
        "from": {"id": SAM, "is_bot": False, "first_name": "Sam"}, "text": "hey all, rough week"}})
    async with inbot.ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None and participant.unreachable_at is not None
    inbot.api.unblock(SAM, notify=False)
    inbot.clock.set(MONDAY_9AM_NY + timedelta(days=1, hours=-1))  # Tuesday 08:00 in New York
    await inbot.say(SAM, "hi, sorry, i'm back")
    async with inbot.ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None and participant.unreachable_at is None
        events = (await s.scalars(select(ParticipantEvent.kind).where(ParticipantEvent.participant_id == pid))).all()
        assert "blocked_bot" in events and "unblocked_bot" in events
        # Planned again at once, in the transaction of their message (not at the planner's next look).
        wednesday = await s.scalar(select(ScheduledAction).where(
            ScheduledAction.participant_id == pid, ScheduledAction.kind == "checkin",
            ScheduledAction.key.endswith("2026-03-04"), ScheduledAction.status == ActionStatus.PENDING))
        assert wednesday is not None
    await inbot.tick()
    assert any("wrote to the bot again after blocking it" in t for t in inbot.texts(DR))  # their clinician knows
    await inbot.say(DR, "/digest")  # the last 24 hours still show that they blocked the bot
    assert "Blocked the bot" in inbot.last_text(DR) and "P-101" in inbot.last_text(DR).split("Blocked the bot")[1]
    await inbot.tick(MONDAY_9AM_NY + timedelta(days=2, hours=1))  # Wednesday 10:00 in New York
    assert "Time for your daily check-in" in inbot.last_text(SAM)
