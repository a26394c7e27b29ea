"""Skill exercises as a participant lives them, in process, on SQLite and PostgreSQL: /skills starts
one, a question's choice branches, typed answers are stored under their key, a pause's next step
comes when the (manual) clock passes it, "No, I'm not safe" in the safety plan gets help on
screen and pages the clinician, and a participant can stop and continue, also after a restart."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.content_models import ExerciseAnswer
from bot.db.models import ActionStatus, Escalation, ScheduledAction
from tests.support.inproc import InProcessBot, add_participant, add_staff

DR, SAM = 900_101, 5_101


async def _enrolled(inbot: InProcessBot) -> int:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-ex", DR, inbot.clock.now())
        p = await add_participant(s, "P-ex", dr, SAM, inbot.clock.now())
        await s.commit()
        return p.id


def _buttons(message: dict) -> list[str]:  # type: ignore[type-arg]
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def _answers(inbot: InProcessBot) -> dict[str, ExerciseAnswer]:
    async with inbot.ctx.sessionmaker() as s:
        return {a.key: a for a in (await s.scalars(select(ExerciseAnswer))).all()}


async def _pending_pauses(inbot: InProcessBot) -> list[ScheduledAction]:
    async with inbot.ctx.sessionmaker() as s:
        return list((await s.scalars(select(ScheduledAction).where(
            ScheduledAction.kind == "exercise_step", ScheduledAction.status == ActionStatus.PENDING))).all())


async def test_thought_record_stores_typed_answers_under_their_keys_and_branches(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/skills")
    menu = inbot.messages(SAM)[-1]
    assert "Skills to practise" in menu["visible_text"]
    assert "Thought record" in _buttons(menu) and "Paced breathing" in _buttons(menu)
    await inbot.press(SAM, "Thought record")
    first = inbot.messages(SAM)[-1]
    assert first["visible_text"].startswith("Thought record") and "hard moment" in first["visible_text"]
    assert _buttons(first) == ["I have one", "Stop for now"]
    await inbot.press(SAM, "I have one")
    assert "What happened?" in inbot.last_text(SAM)
    await inbot.say(SAM, "My boss & I argued <again> at work.")
    assert "What did you feel?" in inbot.last_text(SAM)
    await inbot.press(SAM, "Skip")  # the free-text step's own Skip
    assert "What went through your mind?" in inbot.last_text(SAM)
    await inbot.say(SAM, "I always mess things up.")
    for _ in range(4):  # evidence for, against, a balanced thought, the feelings again
        await inbot.press(SAM, "Skip")
    assert "save this thought record" in inbot.last_text(SAM)
    await inbot.say(SAM, "Yes, save it")  # typing a choice's label answers like its button
    texts = inbot.texts(SAM)
    assert "saved for your next session" in texts[-2]
    assert texts[-1] == "Was this helpful?"

    answers = await _answers(inbot)
    assert answers["situation"].value_text == "My boss & I argued <again> at work."
    assert answers["hot_thought"].value_text == "I always mess things up."
    assert answers["save_for_session"].value_choice == "yes"
    assert "feelings" not in answers and "evidence_for" not in answers  # skipped: nothing stored
    async with inbot.ctx.sessionmaker() as s:
        run = await s.scalar(select(FlowRun).where(FlowRun.kind == "exercise"))
        assert run is not None and run.status == FlowStatus.FINISHED and run.step is None
    await inbot.say(SAM, "/mydata")  # their own words are in their export
    export = json.loads(inbot.api.file_bytes(inbot.messages(SAM)[-1]["document"]["file_id"]))
    hot = next(a for a in export["content"]["exercise_answers"] if a["key"] == "hot_thought")
    assert (hot["exercise"], hot["run"], hot["answer"]) == ("thought-record", run.id, "I always mess things up.")

    # The other branch of a question: "Not now" closes paced breathing with its own reflection.
    await inbot.say(SAM, "/skills")
    await inbot.press(SAM, "Paced breathing")
    await inbot.press(SAM, "Next")
    await inbot.press(SAM, "Not now")
    assert "start this exercise again any time" in inbot.texts(SAM)[-2]
    assert await _pending_pauses(inbot) == []


async def test_a_pause_sends_the_next_step_when_the_clock_passes_it(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/skills")
    await inbot.press(SAM, "Paced breathing")
    await inbot.press(SAM, "Next")
    started = inbot.clock.now()
    await inbot.press(SAM, "I'm ready")
    assert "Breathe in slowly" in inbot.last_text(SAM)
    assert _buttons(inbot.messages(SAM)[-1]) == ["Stop for now"]  # no skip button on this pause
    [pause] = await _pending_pauses(inbot)
    assert pause.due_at == started + timedelta(seconds=4)
    assert pause.key.startswith(f"exercise_step:{pause.payload['run']}:in_1:")

    count = len(inbot.messages(SAM))
    await inbot.tick(started + timedelta(seconds=3))
    assert len(inbot.messages(SAM)) == count  # not yet
    await inbot.tick(started + timedelta(seconds=4))
    assert "breathe out slowly" in inbot.last_text(SAM)
    for seconds, expected in ((10, "Breathe in again"), (14, "And breathe out"), (20, "One more time"),
                              (24, "And breathe out"), (30, "3 more breaths")):
        await inbot.tick(started + timedelta(seconds=seconds))
        assert expected in inbot.last_text(SAM), (seconds, inbot.last_text(SAM))
    assert await _pending_pauses(inbot) == []
    # "Yes, 3 more" loops back to the first pause, scheduled again from now.
    await inbot.press(SAM, "Yes, 3 more")
    [again] = await _pending_pauses(inbot)
    assert again.payload["step"] == "in_1" and again.due_at == inbot.clock.now() + timedelta(seconds=4)
    # Stop during a pause: the step does not come by itself any more.
    await inbot.press(SAM, "Stop for now")
    assert "Send /skills" in inbot.last_text(SAM)
    count = len(inbot.messages(SAM))
    await inbot.tick(inbot.clock.now() + timedelta(seconds=30))
    assert len(inbot.messages(SAM)) == count
    # Continue: the pause is shown again and its timer starts again.
    await inbot.say(SAM, "/skills")
    await inbot.press(SAM, "Continue: Paced breathing")
    assert "Here is where you left off" in inbot.last_text(SAM) and "Breathe in slowly" in inbot.last_text(SAM)
    await inbot.tick(inbot.clock.now() + timedelta(seconds=4))
    assert "breathe out slowly" in inbot.last_text(SAM)


async def test_not_safe_in_the_safety_plan_gets_help_and_pages_the_clinician(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/safetyplan")
    texts = inbot.texts(SAM)
    assert "don't have a safety plan yet" in texts[-2]
    assert "988" in texts[-1] and "911" in texts[-1]  # the crisis numbers, always
    await inbot.press(SAM, "Make my safety plan")
    await inbot.press(SAM, "Let's start")
    assert "are you safe right now?" in inbot.last_text(SAM)
    await inbot.press(SAM, "No, I'm not safe")
    crisis, closing = inbot.texts(SAM)[-2:]
    assert "988" in crisis and "911" in crisis
    assert "Please get help now" in closing
    assert "Was this helpful?" not in inbot.texts(SAM)  # no survey after a crisis reply
    async with inbot.ctx.sessionmaker() as s:
        escalation = await s.scalar(select(Escalation))
        assert escalation is not None and escalation.level == 2 and escalation.source == "exercise"
        assert escalation.categories == "suicide" and escalation.reasons == "trigger:safety_plan_not_safe"
        answer = await s.scalar(select(ExerciseAnswer).where(ExerciseAnswer.key == "safe_now"))
        assert answer is not None and answer.value_choice == "not_safe"
    await inbot.tick()
    assert "Safety alert: URGENT" in inbot.last_text(DR) and "P-ex" in inbot.last_text(DR)
    assert "I've let your care team know" in inbot.last_text(SAM)  # once the page was delivered


async def test_stop_keeps_the_place_text_is_a_note_and_the_run_survives_a_restart(
        inbot: InProcessBot, bot_settings: object, api: object) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/skills")
    await inbot.press(SAM, "5-4-3-2-1 grounding")
    await inbot.press(SAM, "Let's start")
    await inbot.press(SAM, "Done")  # see
    assert "4 things you can feel" in inbot.last_text(SAM)
    await inbot.press(SAM, "Stop for now")
    stopped_step = inbot.messages(SAM)[-2]
    assert "4 things you can feel" in stopped_step["visible_text"] and not _buttons(stopped_step)
    assert "we stopped here" in inbot.last_text(SAM)
    await inbot.say(SAM, "Feeling a bit better now.")
    assert "saved this for your care team" in inbot.last_text(SAM)  # a note, not an answer

    await inbot.close()
    restarted = await InProcessBot.start(bot_settings, api, inbot.clock)  # type: ignore[arg-type]
    try:
        await restarted.say(SAM, "/skills")
        menu = restarted.messages(SAM)[-1]
        assert _buttons(menu)[0] == "▶ Continue: 5-4-3-2-1 grounding"
        await restarted.press(SAM, "Continue: 5-4-3-2-1 grounding")
        assert "4 things you can feel" in restarted.last_text(SAM)
        for _ in range(3):  # feel, hear, smell
            await restarted.press(SAM, "Done")
        await restarted.press(SAM, "Done")  # taste
        await restarted.press(SAM, "About the same")
        assert "Some days it helps less" in restarted.texts(SAM)[-2]
        await restarted.press(SAM, "Yes")
        assert "Thank you for telling us" in restarted.last_text(SAM)
        await restarted.say(SAM, "/skills")
        assert not any(b.startswith("▶") for b in _buttons(restarted.messages(SAM)[-1]))
    finally:
        await restarted.close()
        inbot.running = restarted.running
