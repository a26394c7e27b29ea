"""The content library over real HTTP with the real `iopbot run` process: browse /learn to a read
and answer "Was this helpful?", run two exercises to the end (one with typed answers and a
question's branch, one paced by pauses whose next step comes when the bot's clock is moved), and
leave one half-way. (Resuming after a restart and hot reload are in test_content_restart.py:
they need a bot process of their own.)"""

from __future__ import annotations

import pytest

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess, Person, buttons, enroll_participant, enroll_staff

pytestmark = pytest.mark.e2e


async def _next(person: Person, contains: str) -> dict:  # type: ignore[type-arg]
    """The next message in the chat, which must show `contains`."""
    message = (await person.read())[0]
    assert contains in (message.get("visible_text") or ""), message.get("visible_text")
    return message


async def test_browse_learn_to_a_read_and_answer_was_this_helpful(shared_bot: BotProcess,
                                                                   control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-learn")
    sam = await enroll_participant(shared_bot, control, "P-learn", "dr-learn")
    await sam.say("/learn")
    topics = await _next(sam, "Pick a topic")
    assert "Stress" in buttons(topics) and "Safety" in buttons(topics)
    await sam.press("Stress")
    titles = await sam.wait_for_message("Pick something to read")
    assert titles["message_id"] == topics["message_id"]  # the menu changed in place
    assert "Stress and your body" in buttons(titles)
    await sam.press("Stress and your body")
    first = await _next(sam, "Stress and your body")
    assert "alarm" in first["visible_text"]
    while "Was this helpful?" not in (last := (await sam.read())[0])["visible_text"]:
        pass  # the read's other messages, one idea each
    assert buttons(last) == ["👍 Yes", "👎 No", "⭐ Save"]
    await sam.press("Yes")
    answered = await sam.wait_for_message("Was this helpful? Yes")
    assert answered["message_id"] == last["message_id"] and buttons(answered) == ["⭐ Save"]
    await sam.press("Save")
    await sam.say("/favorites")  # handled after the press: one update at a time per person
    favorites = await _next(sam, "Your favorites")
    assert buttons(favorites) == ["Stress and your body"]
    saved = next(m for m in await sam.all_messages() if m["message_id"] == last["message_id"])
    assert buttons(saved) == ["Remove from favorites"]


async def test_two_exercises_run_to_the_end(shared_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-skill")
    kim = await enroll_participant(shared_bot, control, "P-skill", "dr-skill")

    # 1. The relapse-prevention plan: typed answers, a skipped part, a question's branch.
    await kim.say("/skills")
    menu = await _next(kim, "Skills to practise")
    assert "My relapse prevention plan" in buttons(menu) and "Paced breathing" in buttons(menu)
    await kim.press("My relapse prevention plan")
    await _next(kim, "spot trouble early")
    await kim.press("Let's start")
    await _next(kim, "saved as your plan")
    await kim.press("Next")
    await _next(kim, "Your triggers")
    await kim.say("Payday and being alone at night")
    await _next(kim, "Your warning signs")
    await kim.press("Skip")
    await _next(kim, "Your coping steps")
    await kim.say("Go for a walk and text my sponsor")
    await _next(kim, "People to call")
    await kim.say("My sister Ana")
    await _next(kim, "If you slip")
    await kim.press("Next")
    await _next(kim, "How do you feel about your plan?")
    await kim.press("It's a start")
    closing = await _next(kim, "")
    assert "Was this helpful?" not in closing["visible_text"] and closing["reply_markup"] is None
    assert "Was this helpful?" in (await kim.read())[0]["visible_text"]
    await kim.say("/plan")
    plan = await _next(kim, "My relapse-prevention plan")
    assert "My triggers\nPayday and being alone at night" in plan["visible_text"]
    assert "What I will do\nGo for a walk and text my sponsor" in plan["visible_text"]
    assert "People I can call\nMy sister Ana" in plan["visible_text"]
    assert "988" in (await _next(kim, "911"))["visible_text"]

    # 2. Paced breathing: each pause ends when the bot's clock passes it (moved, never waited for).
    await kim.say("/skills")
    await _next(kim, "Skills to practise")
    await kim.press("Paced breathing")
    await _next(kim, "slow down your breathing")
    await kim.press("Next")
    await _next(kim, "Are you ready?")
    await kim.press("I'm ready")
    await _next(kim, "Breathe in slowly")
    for seconds, expected in ((4, "breathe out slowly"), (6, "Breathe in again"), (4, "And breathe out"),
                              (6, "One more time"), (4, "And breathe out"), (6, "3 more breaths")):
        shared_bot.move_clock(seconds=seconds)
        await _next(kim, expected)
    await kim.press("I'm done")
    assert "notice how your body feels" in (await _next(kim, "Well done"))["visible_text"]
    await _next(kim, "Was this helpful?")


async def test_leave_an_exercise_half_way(shared_bot: BotProcess, control: BotAPIControl) -> None:
    await enroll_staff(shared_bot, control, "dr-half")
    lee = await enroll_participant(shared_bot, control, "P-half", "dr-half")
    await lee.say("/skills")
    await _next(lee, "Skills to practise")
    await lee.press("5-4-3-2-1 grounding")
    await _next(lee, "your senses can help you")
    await lee.press("Let's start")
    await _next(lee, "5 things you can see")
    await lee.press("Stop for now")
    await _next(lee, "we stopped here")
    await lee.say("I need to go to work now")
    assert "saved this for your care team" in (await lee.read())[0]["visible_text"]  # a note, not an answer
    await lee.say("/skills")
    menu = await _next(lee, "Skills to practise")
    assert buttons(menu)[0] == "▶ Continue: 5-4-3-2-1 grounding"
