"""People come and go, as they live it, in process on SQLite and PostgreSQL: the goodbye on
discharge (with the crisis numbers), what a discharged participant's messages get (a crisis still
pages), alumni check-ins, the language choice on the first screen, and the "can't attend" note
under the same privacy setting as alert quotes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import select

from bot.db.models import Participant, ScheduledAction, Staff
from bot.services import enrollment
from bot.services.checkins.planner import CheckinPlanner
from bot.services.people import discharge
from tests.support.inproc import InProcessBot, add_participant, add_staff

DR, SAM, ALEX = 900_301, 5_301, 5_302


async def _discharge(inbot: InProcessBot, alias: str, *, alumni: bool = False) -> None:
    async with inbot.ctx.sessionmaker() as s:
        p = await s.scalar(select(Participant).where(Participant.alias == alias))
        assert p is not None
        await discharge(s, p, inbot.clock.now(), alumni=alumni)
        await inbot.ctx.parts.get(CheckinPlanner).replan_participant(s, p, inbot.clock.now())
        await s.commit()


async def test_discharge_says_goodbye_and_a_crisis_afterwards_still_pages(inbot: InProcessBot) -> None:
    now = inbot.clock.now()
    inbot.ctx.settings = inbot.ctx.settings.replace(
        program=dataclasses.replace(inbot.ctx.settings.program, name="Riverside IOP", after_hours_phone="555-0100"))
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, now)
        await add_participant(s, "P-sam", dr, SAM, now)
        await s.commit()
    await inbot.tick()
    await _discharge(inbot, "P-sam")
    await inbot.tick()
    goodbye = inbot.last_text(SAM)
    assert goodbye.startswith("Thank you for being part of Riverside IOP.")
    assert "Call or text 988" in goodbye and "call 911" in goodbye and "555-0100" in goodbye
    assert inbot.texts(DR)[-1].startswith("P-sam was discharged.")

    await inbot.say(SAM, "hello, is anyone there?")
    assert inbot.last_text(SAM).startswith("Your time in the program has ended, so nobody reads messages here")
    await inbot.say(SAM, "I want to kill myself tonight")
    assert "988" in inbot.texts(SAM)[-1]  # the crisis reply
    await inbot.tick()
    assert any("Safety alert" in t and "P-sam" in t for t in inbot.texts(DR))  # and the clinician is paged
    clock_before = inbot.clock.now()
    await inbot.tick(clock_before + timedelta(days=3))
    assert not any("check-in" in t.lower() for t in inbot.texts(SAM)[1:])  # no check-ins after discharge


async def test_alumni_get_a_short_check_in_and_can_answer_it(inbot: InProcessBot) -> None:
    now = inbot.clock.now()  # Monday 2 March, 14:00 UTC
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, now)
        await add_participant(s, "P-alex", dr, ALEX, now)
        await s.commit()
    await _discharge(inbot, "P-alex", alumni=True)
    await inbot.tick()
    assert "every 7 days" in inbot.last_text(ALEX)
    for day in range(1, 8):
        await inbot.tick(now.replace(hour=14) + timedelta(days=day))  # 09:00 in New York, each day
    checkins = [t for t in inbot.texts(ALEX) if "How is your mood" in t]
    assert len(checkins) == 1, inbot.texts(ALEX)  # the alumni check-in a week later, not daily
    await inbot.press(ALEX, "5")
    assert "→ 5" in inbot.texts(ALEX)[-2] and inbot.last_text(ALEX).startswith("2/")  # answered, next question
    async with inbot.ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "checkin",
                                                              ScheduledAction.status == "sent"))).all()
    assert [r.payload["date"] for r in rows] == ["2026-03-09"]


async def test_the_first_screen_offers_the_other_language(inbot: InProcessBot) -> None:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        await add_staff(s, "dr-lee", DR, now)
        issued = await enrollment.invite_participant(s, now, inbot.ctx.settings, "P-new", "dr-lee")
        await s.commit()
    await inbot.say(7001, f"/start {issued.token}")
    consent = inbot.messages(7001)[-1]
    labels = [b["text"] for row in consent["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["I agree", "I do not agree", "🌐 Español"]
    await inbot.press(7001, "Español")
    consent = inbot.messages(7001)[-1]
    assert len(inbot.messages(7001)) == 1  # the same message, now in Spanish
    assert "no tienen cifrado de extremo a extremo" in consent["visible_text"]
    assert [b["text"] for row in consent["reply_markup"]["inline_keyboard"] for b in row] == [
        "Estoy de acuerdo", "No estoy de acuerdo", "🌐 English"]
    await inbot.press(7001, "Estoy de acuerdo")
    assert "Vamos a configurar" in inbot.texts(7001)[1]
    await inbot.press(7001, "Chicago")
    assert inbot.texts(7001)[-1].startswith("¿A qué hora te envío el chequeo diario?")


async def test_a_cant_attend_note_is_quoted_only_when_alert_quotes_are_on(inbot: InProcessBot) -> None:
    from tests.flows.test_session_calendar import CAL, CHI, MON, _program

    inbot.ctx.settings = inbot.ctx.settings.replace(
        privacy=dataclasses.replace(inbot.ctx.settings.privacy, quote_in_alerts=True))
    await _program(inbot)
    await inbot.tick(MON + timedelta(hours=5, minutes=45))
    await inbot.press(CHI, "Can't attend")
    await inbot.press(CHI, "Other")
    await inbot.say(CHI, "My car broke down")
    await inbot.tick()
    assert inbot.texts(CAL)[-1].endswith("Reason: Other.\nThey wrote: My car broke down")
    async with inbot.ctx.sessionmaker() as s:
        assert await s.scalar(select(Staff.alias).where(Staff.chat_id == CAL)) == "dr-cal"
