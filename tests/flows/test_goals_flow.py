"""Goals as a participant and their clinician live them, in process, on SQLite and PostgreSQL:
/goals with buttons (add, change, done), at most three; the weekly prompt on Friday after the
check-in time with 0-10 buttons and an optional line; the clinician's /goal ALIAS with the
trajectory, adding a goal with the participant in one line; another clinician refused and audited;
a crisis sentence typed as a goal, or as the weekly line, gets the crisis reply and pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from bot.db.goal_models import Goal, GoalRating, GoalStatus
from bot.db.models import ActionStatus, AuditEntry, ScheduledAction, Staff
from tests.support.inproc import InProcessBot, add_participant, add_staff

MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start
FRIDAY_NY = datetime(2026, 3, 6, 14, 0, tzinfo=UTC)  # Friday 09:00 in New York (EST)
DR, ORTIZ, SAM = 900_001, 900_002, 5_001
CRISIS = "I want to kill myself tonight, I have the pills here"


async def _enrolled(inbot: InProcessBot, locale: str = "en") -> int:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, inbot.clock.now())
        await add_staff(s, "dr-ortiz", ORTIZ, inbot.clock.now())
        p = await add_participant(s, "P-101", dr, SAM, inbot.clock.now(), checkin_time="09:00", locale=locale)
        await s.commit()
        return p.id


def _buttons(message: dict) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def _add(inbot: InProcessBot, words: str) -> None:
    await inbot.press(SAM, "Add a goal")
    assert "Type your goal" in inbot.last_text(SAM)
    await inbot.say(SAM, words)


async def _goals(inbot: InProcessBot) -> list[tuple[str, str]]:
    async with inbot.ctx.sessionmaker() as s:
        return [(g.text, g.status) for g in (await s.scalars(select(Goal).order_by(Goal.id))).all()]


async def test_participant_keeps_up_to_three_goals_with_buttons(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/goals")
    first = inbot.messages(SAM)[-1]
    assert "You have no goals yet" in first["visible_text"] and "Every Friday" in first["visible_text"]
    assert _buttons(first) == ["➕ Add a goal"]

    await _add(inbot, "Walk   10 minutes\na day")
    assert "Saved. Your goal: Walk 10 minutes a day" in inbot.last_text(SAM)
    await inbot.say(SAM, "/goals")
    await _add(inbot, "Call my sponsor on Sundays")
    await inbot.say(SAM, "/goals")
    await _add(inbot, "x" * 201)
    assert "under 200 characters" in inbot.last_text(SAM)
    await inbot.say(SAM, "Eat breakfast")  # still asking: the shorter words are the goal
    await inbot.say(SAM, "/goals")
    full = inbot.messages(SAM)[-1]
    assert "1. Walk 10 minutes a day" in full["visible_text"] and "3. Eat breakfast" in full["visible_text"]
    assert "the most at one time" in full["visible_text"]
    assert "➕ Add a goal" not in _buttons(full)
    assert _buttons(full)[:2] == ["✏️ Change 1", "✅ Done 1"]

    await inbot.press(SAM, "Change 2")
    assert "Call my sponsor on Sundays" in inbot.last_text(SAM)
    await inbot.say(SAM, "Call my sponsor twice a week")
    assert "now reads: Call my sponsor twice a week" in inbot.last_text(SAM)

    await inbot.say(SAM, "/goals")
    await inbot.press(SAM, "Done 1")
    assert "Mark this goal as done?" in inbot.last_text(SAM)
    await inbot.press(SAM, "Not yet")
    assert (await _goals(inbot))[0][1] == GoalStatus.OPEN
    await inbot.press(SAM, "Done 1")
    await inbot.press(SAM, "Yes, it's done")
    assert "Marked done: Walk 10 minutes a day" in inbot.last_text(SAM)
    assert await _goals(inbot) == [("Walk 10 minutes a day", "done"), ("Call my sponsor twice a week", "open"),
                                   ("Eat breakfast", "open")]
    await inbot.say(SAM, "/goals")
    assert "➕ Add a goal" in _buttons(inbot.messages(SAM)[-1])
    assert "Walk 10 minutes" not in inbot.last_text(SAM)

    await inbot.press(SAM, "Add a goal")
    await inbot.press(SAM, "Cancel")
    assert "nothing changed" in inbot.last_text(SAM)
    await inbot.say(SAM, "Feeling okay today")  # after Cancel, text is a note again, not a goal
    assert len(await _goals(inbot)) == 3
    assert inbot.texts(DR) == []  # nothing here pages anyone


async def test_typed_goal_is_assessed_a_crisis_gets_the_crisis_reply_and_is_no_goal(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/goals")
    await _add(inbot, CRISIS)
    reply = inbot.last_text(SAM)
    assert "988" in reply and "911" in reply
    assert not any("Saved. Your goal" in t for t in inbot.texts(SAM))
    assert await _goals(inbot) == []
    await inbot.tick()
    assert "Safety alert: IMMINENT" in inbot.last_text(DR) and "P-101" in inbot.last_text(DR)
    await inbot.say(SAM, "Walk daily")  # no longer asked for a goal: an ordinary message
    assert await _goals(inbot) == []


async def test_weekly_prompt_on_friday_after_checkin_time_rated_and_shown_to_the_clinician(
        inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot, locale="es")
    await inbot.say(SAM, "/goals")
    assert "Cada viernes" in inbot.last_text(SAM)
    await inbot.press(SAM, "Agregar una meta")
    await inbot.say(SAM, "Caminar cada día")
    await inbot.say(SAM, "/goals")
    await inbot.press(SAM, "Agregar una meta")
    await inbot.say(SAM, "Dormir antes de las 11")
    async with inbot.ctx.sessionmaker() as s:  # planned at once, not at the next planning round
        row = await s.scalar(select(ScheduledAction).where(ScheduledAction.key == f"goal_progress:{pid}:2026-03-06"))
    assert row is not None and row.due_at == FRIDAY_NY + timedelta(minutes=45)

    await inbot.tick(FRIDAY_NY + timedelta(minutes=44))
    assert not any("Tus metas esta semana" in t for t in inbot.texts(SAM))
    await inbot.tick(FRIDAY_NY + timedelta(minutes=45))  # 09:45 in New York
    prompt = inbot.messages(SAM)[-1]
    assert "Tus metas esta semana" in prompt["visible_text"] and "Caminar cada día" in prompt["visible_text"]
    assert "1/2" in prompt["visible_text"]
    assert _buttons(prompt) == [str(n) for n in range(11)] + ["Omitir"]
    await inbot.press(SAM, "6")
    assert "unas palabras sobre Caminar cada día" in inbot.last_text(SAM)
    await inbot.say(SAM, "Caminé 4 días")
    assert "Dormir antes de las 11" in inbot.last_text(SAM) and "2/2" in inbot.last_text(SAM)
    await inbot.say(SAM, "3")  # a typed number rates like its button
    await inbot.press(SAM, "Omitir")
    assert "Gracias" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        ratings = [(r.value, r.note) for r in (await s.scalars(select(GoalRating).order_by(GoalRating.id))).all()]
        row = await s.scalar(select(ScheduledAction).where(ScheduledAction.key == f"goal_progress:{pid}:2026-03-06"))
        raw = (await s.execute(text("SELECT text FROM goals ORDER BY id"))).scalars().all()
    assert ratings == [(6, "Caminé 4 días"), (3, None)]
    assert row is not None and row.status == ActionStatus.ANSWERED
    assert raw == ["Caminar cada día", "Dormir antes de las 11"]  # no data key in tests: stored as typed

    # A week later: rated again; the clinician sees the trajectory.
    await inbot.tick(FRIDAY_NY + timedelta(days=7, minutes=45))
    await inbot.press(SAM, "8")
    await inbot.press(SAM, "Omitir")
    await inbot.press(SAM, "Omitir")  # skipping a rating is an answer too: no rating, no line asked
    assert "Gracias" in inbot.last_text(SAM)
    inbot.clock.set(FRIDAY_NY + timedelta(days=9))
    await inbot.say(DR, "/goal P-101")
    view = inbot.messages(DR)[-1]
    assert "Goals: P-101" in view["visible_text"]
    assert "1. Caminar cada día: 6 → 8 (last: 2 days ago)" in view["visible_text"]
    assert "last note: “Caminé 4 días”" in view["visible_text"]
    assert "2. Dormir antes de las 11: 3 (last: 9 days ago)" in view["visible_text"]
    assert _buttons(view) == ["✏️ Change 1", "✅ Done 1", "✏️ Change 2", "✅ Done 2", "➕ Add a goal"]

    await inbot.say(ORTIZ, "/goal P-101")
    assert "No participant P-101 on your caseload" in inbot.last_text(ORTIZ)
    assert "Caminar" not in inbot.last_text(ORTIZ)
    async with inbot.ctx.sessionmaker() as s:
        entries = [(e.actor, e.action, e.participant_id, e.allowed)
                   for e in (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()]
    assert ("staff:1", "view:goals", pid, True) in entries
    assert ("staff:2", "refused:/goal", pid, False) in entries


async def test_clinician_adds_and_closes_a_goal_with_the_participant(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await inbot.say(DR, "/goal")
    assert "/goal P-101" in inbot.last_text(DR) and "No goals yet: P-101" in inbot.last_text(DR)
    await inbot.say(DR, "/goal p-101 add Go to two meetings a week")
    assert "Added for P-101: Go to two meetings a week" in inbot.last_text(DR)
    assert "They get a message about it" in inbot.last_text(DR)
    await inbot.tick()
    assert "Your care team added a goal with you: Go to two meetings a week" in inbot.last_text(SAM)
    await inbot.say(DR, "/goal P-101")
    assert "1. Go to two meetings a week: no ratings yet" in inbot.last_text(DR)
    await inbot.press(DR, "Add a goal")
    assert "Type the goal for P-101" in inbot.last_text(DR)
    await inbot.say(DR, "Text my sister when cravings hit")
    assert "Added for P-101: Text my sister when cravings hit" in inbot.last_text(DR)
    await inbot.say(DR, "/goal P-101 edit 2 Text my sister or sponsor when cravings hit")
    await inbot.tick()
    assert "It now reads: Text my sister or sponsor when cravings hit" in inbot.last_text(SAM)
    await inbot.say(DR, "/goal P-101 done 3")
    assert "P-101 has no open goal 3" in inbot.last_text(DR)
    await inbot.say(DR, "/goal P-101 done 1")
    assert "Marked done for P-101: Go to two meetings a week" in inbot.last_text(DR)
    await inbot.tick()
    assert "marked a goal done with you: Go to two meetings a week" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        goals = (await s.scalars(select(Goal).order_by(Goal.id))).all()
        entries = [(e.action, e.participant_id) for e in (await s.scalars(select(AuditEntry))).all()]
    assert [(g.created_by, g.status) for g in goals] == [("staff:1", "done"), ("staff:1", "open")]
    assert goals[1].updated_by == "staff:1" and goals[0].done_by == "staff:1"
    assert [a for a, p in entries if p == pid and a.startswith("goal:")] == ["goal:add", "goal:add", "goal:edit",
                                                                             "goal:done"]

    await inbot.say(ORTIZ, "/goal P-101 add Something else")  # not their participant: nothing added
    assert "No participant P-101 on your caseload" in inbot.last_text(ORTIZ)
    await inbot.say(SAM, "/goal P-101")
    assert "That command is for staff" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        assert len((await s.scalars(select(Goal))).all()) == 2
        refused = [(e.actor, e.action) for e in (await s.scalars(select(AuditEntry).where(
            AuditEntry.allowed.is_(False)))).all()]
    assert ("staff:2", "refused:/goal") in refused and (f"participant:{pid}", "refused:/goal") in refused


async def test_crisis_in_the_weekly_line_gets_the_crisis_reply_and_ends_the_questions(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await inbot.say(DR, "/goal P-101 add Walk daily")
    await inbot.say(DR, "/goal P-101 add Sleep by 11")
    await inbot.tick(FRIDAY_NY + timedelta(minutes=45))
    assert "Your goals this week" in inbot.last_text(SAM)
    await inbot.press(SAM, "2")
    await inbot.say(SAM, CRISIS)
    texts = inbot.texts(SAM)
    assert "988" in texts[-1] and "911" in texts[-1]
    assert not any("Sleep by 11" in t and "0 is not at all" in t for t in texts)  # no next question
    await inbot.tick()
    assert "Safety alert: IMMINENT" in inbot.last_text(DR)
    async with inbot.ctx.sessionmaker() as s:
        ratings = [(r.value, r.note) for r in (await s.scalars(select(GoalRating))).all()]
    assert ratings == [(2, None)]  # the rating stays; the crisis message is with its alert, not a goal line
    count = len(inbot.messages(SAM))
    await inbot.press(SAM, "Skip")  # the old Skip button no longer answers anything
    assert len(inbot.messages(SAM)) == count
    assert pid


async def test_no_prompt_without_an_open_goal(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await inbot.say(DR, "/goal P-101 add Walk daily")
    await inbot.say(DR, "/goal P-101 done 1")
    await inbot.tick(FRIDAY_NY + timedelta(hours=2))
    assert not any("Your goals this week" in t for t in inbot.texts(SAM))
    async with inbot.ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "goal_progress"))).all()
    assert [(r.key, r.status) for r in rows] == [(f"goal_progress:{pid}:2026-03-06", ActionStatus.CANCELLED)]


async def test_words_typed_long_after_the_question_are_a_note_not_a_goal(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/goals")
    await inbot.press(SAM, "Add a goal")
    inbot.clock.set(inbot.clock.now() + timedelta(minutes=31))
    await inbot.say(SAM, "Rough morning, better now")
    assert await _goals(inbot) == []
    assert "Saved. Your goal" not in inbot.last_text(SAM)


async def test_a_forged_goal_button_from_another_clinician_is_refused_and_audited(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await inbot.say(DR, "/goal P-101 add Walk daily")
    async with inbot.ctx.sessionmaker() as s:
        goal = await s.scalar(select(Goal))
    assert goal is not None
    await inbot.say(ORTIZ, "/help")
    message_id = inbot.messages(ORTIZ)[-1]["message_id"]
    for data in (f"sgoal:done:{goal.id}", f"sgoal:yes:{goal.id}", f"sgoal:edit:{goal.id}", f"sgoal:add:{pid}"):
        await inbot.press_data(ORTIZ, message_id, data)
    assert await _goals(inbot) == [("Walk daily", "open")]
    assert not any("Walk daily" in t for t in inbot.texts(ORTIZ))
    async with inbot.ctx.sessionmaker() as s:
        refused = [(e.actor, e.action, e.participant_id) for e in (await s.scalars(select(AuditEntry).where(
            AuditEntry.allowed.is_(False)))).all()]
    assert refused == [("staff:2", "refused:goal_button", pid)] * 4


async def test_goal_alone_shows_a_coach_every_participants_goals(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    async with inbot.ctx.sessionmaker() as s:
        lee = await s.scalar(select(Staff).where(Staff.alias == "dr-lee"))
        ortiz = await s.scalar(select(Staff).where(Staff.alias == "dr-ortiz"))
        assert lee is not None and ortiz is not None
        quiet = await add_participant(s, "P-102", lee, 5_002, inbot.clock.now())
        other = await add_participant(s, "P-201", ortiz, 5_003, inbot.clock.now())
        await s.commit()
    await inbot.say(DR, "/goal")
    assert "No goals yet: P-101, P-102" in inbot.last_text(DR)
    await inbot.say(DR, "/goal P-101 add Walk daily")
    await inbot.say(DR, "/goal P-101 add Sleep by 11")
    await inbot.say(ORTIZ, "/goal P-201 add Call my sponsor")
    await inbot.tick(FRIDAY_NY + timedelta(minutes=45))
    await inbot.press(SAM, "7")
    inbot.clock.set(FRIDAY_NY + timedelta(days=1))
    await inbot.say(DR, "/goal")
    overview = inbot.last_text(DR)
    assert "Goals of your participants (1 with goals)" in overview
    assert "P-101\nGoal: Walk daily · 7 (last: yesterday)\nGoal: Sleep by 11 · no ratings yet" in overview
    assert "No goals yet: P-102" in overview
    assert "P-201" not in overview and "Call my sponsor" not in overview  # not on dr-lee's caseload
    async with inbot.ctx.sessionmaker() as s:
        views = [e.participant_id for e in (await s.scalars(select(AuditEntry).where(
            AuditEntry.actor == "staff:1", AuditEntry.action == "view:goals"))).all()]
    assert views == [pid] and quiet.id not in views and other.id not in views


async def test_staff_cannot_change_goals_of_someone_who_declined_or_left(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await inbot.say(DR, "/goal P-101 add Walk daily")
    assert "Walk daily" in inbot.last_text(DR)
    for status in ("declined", "discharged", "consent_pending"):
        async with inbot.ctx.sessionmaker() as s:
            await s.execute(text("UPDATE participants SET status = :s WHERE id = :i"), {"s": status, "i": pid})
            await s.commit()
        for command in ("/goal P-101 add Sleep by 11", "/goal P-101 edit 1 Run", "/goal P-101 done 1",
                        "/goal P-101 add"):
            await inbot.say(DR, command)
            assert "not enrolled in the program now" in inbot.last_text(DR), (status, command)
    assert await _goals(inbot) == [("Walk daily", "open")]


async def test_a_change_made_at_night_reaches_the_participant_after_quiet_hours(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    night = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 02:00 in New York: quiet hours until 07:00
    inbot.clock.set(night)
    await inbot.say(DR, "/goal P-101 add Walk daily")
    assert "Added for P-101: Walk daily" in inbot.last_text(DR)
    await inbot.tick()
    assert not any("added a goal with you" in t for t in inbot.texts(SAM))
    await inbot.tick(night + timedelta(hours=4, minutes=59))
    assert not any("added a goal with you" in t for t in inbot.texts(SAM))
    await inbot.tick(night + timedelta(hours=5))  # 07:00 in New York
    assert "Your care team added a goal with you: Walk daily" in inbot.last_text(SAM)


async def test_a_goal_typed_with_a_concern_is_no_goal_and_the_supportive_reply_stands(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/goals")
    await _add(inbot, "I used to cut, 200 days clean")
    texts = inbot.texts(SAM)
    assert not any("Saved. Your goal" in t for t in texts)
    assert await _goals(inbot) == []
    assert not any("911" in t for t in texts[-2:])  # a concern: supportive, not the crisis reply
    await inbot.say(SAM, "Walk daily")  # the question ended: an ordinary message, no goal
    assert await _goals(inbot) == []
