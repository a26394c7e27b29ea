"""Medication reminders as a participant and their clinician live them, in process, on SQLite and
PostgreSQL: /meds adds a reminder by typing a name and times and tapping days; it arrives at the
participant's local time with Taken / Snooze / Skip; Taken shows in /meds and in the adherence
figures; Snooze brings it back after the snooze; three unanswered in a row tell the clinician
once, with consent only and without the name; /pause stops the reminders and /resume brings them
back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.db.medication_models import DoseStatus, MedicationConsent, MedicationDose, MedicationReminder
from bot.db.models import Disclosure
from bot.services.medications.summary import adherence, adherence_line, export_rows
from tests.support.inproc import InProcessBot, add_participant, add_staff

# Monday 2 March 2026, 14:00 UTC = 09:00 in New York (EST).
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
DR, DR2, SAM, ALEX = 910_001, 910_002, 6_001, 6_002


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    """A March 2026 wall time in New York (EST until the 8th, EDT from then) as UTC."""
    from zoneinfo import ZoneInfo

    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)


async def _people(inbot: InProcessBot) -> tuple[int, int]:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, inbot.clock.now())
        dr2 = await add_staff(s, "dr-kim", DR2, inbot.clock.now())
        sam = await add_participant(s, "P-101", dr, SAM, inbot.clock.now())
        alex = await add_participant(s, "P-102", dr2, ALEX, inbot.clock.now())
        await s.commit()
        return sam.id, alex.id


def _buttons(message: dict) -> list[str]:  # type: ignore[type-arg]
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def _add(inbot: InProcessBot, user: int, name: str | None, times: str, days: list[str] | None = None,
               consent: str | None = "Yes, tell them") -> str:
    """Walk /meds → Add as the participant would; returns the confirmation."""
    await inbot.say(user, "/meds")
    await inbot.press(user, "Add a reminder")
    assert "What do you want to call this reminder" in inbot.last_text(user)
    if name is None:
        await inbot.press(user, "No name")
    else:
        await inbot.say(user, name)
    assert "At what time" in inbot.last_text(user)
    await inbot.say(user, times)
    assert "On which days" in inbot.last_text(user)
    if days is None:
        await inbot.press(user, "Every day")
    else:
        for day in days:
            await inbot.press(user, day)
        await inbot.press(user, "Done")
    if consent is not None:
        assert "May your care team see how many reminders you mark taken" in inbot.last_text(user)
        await inbot.press(user, consent)
    return inbot.last_text(user)


async def test_reminder_arrives_at_local_time_and_taken_is_recorded(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    sam, _ = await _people(inbot)
    await inbot.say(SAM, "/meds")
    assert "no medication reminders yet" in inbot.last_text(SAM)
    await inbot.say(SAM, "/meds")
    await inbot.press(SAM, "Add a reminder")
    await inbot.say(SAM, "morning pill")
    await inbot.say(SAM, "nonsense o'clock")
    assert "couldn't read that" in inbot.last_text(SAM)
    await inbot.say(SAM, "8am, 21:30")
    await inbot.press(SAM, "Every day")
    await inbot.press(SAM, "Yes, tell them")
    assert "Saved. I'll remind you at 08:00, 21:30, every day" in inbot.last_text(SAM)

    await inbot.tick(ny(3, 7, 59))
    assert not any("morning pill" in t for t in inbot.texts(SAM)[-1:])
    await inbot.tick(ny(3, 8, 0))
    reminder = inbot.messages(SAM)[-1]
    assert reminder["visible_text"] == "⏰ 08:00: your reminder for morning pill."
    assert _buttons(reminder) == ["✅ Taken", "⏰ Snooze 15 min", "Skip"]

    inbot.clock.set(ny(3, 8, 3))
    await inbot.press(SAM, "Taken")
    edited = next(m for m in inbot.messages(SAM) if m["message_id"] == reminder["message_id"])
    assert "Taken. Noted." in edited["visible_text"] and not _buttons(edited)
    await inbot.press_data(SAM, reminder["message_id"], _data(reminder, "Skip"))
    assert inbot.notices(SAM)[-1] == "Already noted."

    await inbot.say(SAM, "/meds")
    overview = inbot.last_text(SAM)
    assert "1. morning pill: 08:00, 21:30, every day" in overview
    assert "Last 7 days: 1 of 1 taken" in overview
    assert "Your care team sees how many reminders you mark taken, and is told if you miss 3 in a row" in overview
    assert "does not give advice" in overview
    async with inbot.ctx.sessionmaker() as s:
        figures = await adherence(s, sam, START, ny(4, 0, 0))
        consent = await s.scalar(select(MedicationConsent))
        own = await export_rows(s, sam)
    assert own["reminders"][0]["name"] == "morning pill" and own["reminders"][0]["times"] == ["08:00", "21:30"]
    assert [(d["date"], d["time"], d["status"]) for d in own["doses"]] == [("2026-03-03", "08:00", "taken")]
    assert (figures.taken, figures.missed, figures.pending, figures.rate) == (1, 0, 0, 1.0)
    assert adherence_line(inbot.ctx, figures, "en") == "Medication reminders: 1 of 1 taken"
    assert adherence_line(inbot.ctx, figures, "es") == "Recordatorios de medicación: 1 de 1 tomadas"
    assert consent is not None and consent.agreed and consent.decided_at == START


def _data(message: dict, label: str) -> str:  # type: ignore[type-arg]
    return next(b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row
                if label in b["text"])


async def test_snooze_brings_it_back_and_skip_is_recorded(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    sam, _ = await _people(inbot)
    saved = await _add(inbot, SAM, None, "21:30", days=["Tue", "Thu"])
    assert "21:30, Tue, Thu" in saved
    await inbot.tick(ny(2, 21, 30))  # Monday: not a reminder day
    assert "your medication reminder" not in inbot.last_text(SAM)
    await inbot.tick(ny(3, 21, 30))  # Tuesday
    assert inbot.last_text(SAM) == "⏰ 21:30: your medication reminder."
    await inbot.press(SAM, "Snooze")
    assert "Snoozed. I'll remind you again at 21:45" in inbot.texts(SAM)[-1]
    await inbot.tick(ny(3, 21, 44))
    assert "again" not in inbot.last_text(SAM).split("\n")[0]
    await inbot.tick(ny(3, 21, 45))
    assert inbot.last_text(SAM) == "⏰ Reminder again (21:30)."
    await inbot.press(SAM, "Skip")
    assert "Skipped. Noted." in inbot.texts(SAM)[-1]
    async with inbot.ctx.sessionmaker() as s:
        dose = await s.scalar(select(MedicationDose))
        figures = await adherence(s, sam, START, ny(5, 0, 0))
    assert dose is not None and dose.status == DoseStatus.SKIPPED and dose.snoozes == 1
    assert adherence_line(inbot.ctx, figures, "en") == "Medication reminders: 0 of 1 taken (1 skipped)"


async def _miss_days(inbot: InProcessBot, days: range) -> None:
    for day in days:
        await inbot.tick(ny(day, 8, 0))
        await inbot.tick(ny(day, 10, 1))  # past the 120-minute window: missed


async def test_three_missed_in_a_row_tell_the_clinician_once_with_consent_only(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    sam, alex = await _people(inbot)
    await _add(inbot, SAM, "lithium", "08:00")
    assert "Saved" in await _add(inbot, ALEX, "blue one", "08:00", consent="No")

    await _miss_days(inbot, range(3, 5))
    assert not any("missed" in t for t in inbot.texts(DR))
    await _miss_days(inbot, range(5, 6))
    notices = [t for t in inbot.texts(DR) if "missed" in t]
    assert notices == ["P-101 has missed 3 doses in a row of a reminder they set."]
    assert "lithium" not in " ".join(inbot.texts(DR))
    await _miss_days(inbot, range(6, 8))
    assert len([t for t in inbot.texts(DR) if "missed" in t]) == 1  # one notice for one run
    assert not any("missed" in t for t in inbot.texts(DR2))  # Alex said no
    async with inbot.ctx.sessionmaker() as s:
        figures = await adherence(s, sam, START, ny(9, 0, 0))
        disclosed = (await s.scalars(select(Disclosure).where(Disclosure.participant_id == sam))).all()
        assert not (await s.scalars(select(Disclosure).where(Disclosure.participant_id == alex))).all()
    assert (figures.missed, figures.rate) == (5, 0.0)
    assert [d.recipient for d in disclosed] == ["staff:1"]

    # Taken ends the run; a new run of three tells again. Revoking in /meds stops it.
    await inbot.tick(ny(8, 8, 0))
    await inbot.press(SAM, "Taken")
    await inbot.say(SAM, "/meds")
    await inbot.press(SAM, "Stop telling my care team")
    assert "Your care team does not see your reminders" in inbot.last_text(SAM)
    await _miss_days(inbot, range(9, 13))
    assert len([t for t in inbot.texts(DR) if "missed" in t]) == 1


async def test_pause_stops_reminders_and_resume_brings_them_back(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    await _people(inbot)
    await _add(inbot, SAM, "evening", "20:00")
    await inbot.say(SAM, "/pause")
    await inbot.tick(ny(2, 20, 0))
    await inbot.tick(ny(3, 20, 0))
    assert not any("evening" in t for t in inbot.texts(SAM))
    inbot.clock.set(ny(3, 21, 0))
    await inbot.say(SAM, "/resume")
    await inbot.tick(ny(4, 20, 0))
    assert inbot.last_text(SAM) == "⏰ 20:00: your reminder for evening."
    # Pausing one reminder in /meds stops it too; removing it takes it off the list.
    await inbot.say(SAM, "/meds")
    await inbot.press(SAM, "Pause 1")
    assert "evening: 20:00, every day (paused)" in inbot.last_text(SAM)
    await inbot.tick(ny(5, 20, 0))
    assert inbot.texts(SAM).count("⏰ 20:00: your reminder for evening.") == 1
    await inbot.press(SAM, "Remove 1")
    assert "no medication reminders yet" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        reminder = await s.scalar(select(MedicationReminder))
    assert reminder is not None and reminder.removed_at is not None


async def test_across_the_spring_dst_change_it_stays_at_eight_local(inbot: InProcessBot) -> None:
    inbot.clock.set(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    await _people(inbot)
    await _add(inbot, SAM, None, "08:00")
    sent = []
    for day in (7, 8, 9):  # Saturday EST, Sunday the clocks go forward, Monday EDT
        await inbot.tick(ny(day, 8, 0) - timedelta(minutes=1))
        before = len(inbot.texts(SAM))
        await inbot.tick(ny(day, 8, 0))
        assert len(inbot.texts(SAM)) == before + 1, day
        sent.append(ny(day, 8, 0).hour)
        await inbot.press(SAM, "Taken")
    assert sent == [13, 12, 12]  # 08:00 in New York, in UTC


async def test_typed_text_is_a_name_only_while_the_question_is_open(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    await _people(inbot)
    await inbot.say(SAM, "/meds")
    await inbot.press(SAM, "Add a reminder")
    await inbot.say(SAM, "/checkin")  # a check-in opened after the question: its typed answers are its own
    assert "How is your mood" in inbot.last_text(SAM)
    await inbot.say(SAM, "7")
    assert "cravings" in inbot.last_text(SAM)
    await inbot.say(SAM, "/meds")
    await inbot.press(SAM, "Add a reminder")
    inbot.clock.set(START + timedelta(minutes=31))  # left open: later text is an ordinary message
    await inbot.say(SAM, "feeling ok today")
    assert "At what time" not in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        assert (await s.scalars(select(MedicationReminder))).all() == []


async def test_a_name_in_distress_gets_the_crisis_reply_and_is_no_name(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    await _people(inbot)
    await inbot.say(SAM, "/meds")
    await inbot.press(SAM, "Add a reminder")
    await inbot.say(SAM, "all of them tonight, I want to die")
    texts = inbot.texts(SAM)
    assert any("988" in t for t in texts[-3:])  # the crisis reply
    assert not any("At what time" in t for t in texts)
    await inbot.tick()
    assert any("Safety alert" in t for t in inbot.texts(DR))
    async with inbot.ctx.sessionmaker() as s:
        assert (await s.scalars(select(MedicationReminder))).all() == []


async def test_in_spanish_with_a_name_that_looks_like_markup(inbot: InProcessBot) -> None:
    inbot.clock.set(START)
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-ruiz", DR, inbot.clock.now())
        await add_participant(s, "P-104", dr, SAM, inbot.clock.now(), locale="es")
        await s.commit()
    await inbot.say(SAM, "/meds", language_code="es")
    assert "Todavía no tienes recordatorios" in inbot.last_text(SAM)
    await inbot.press(SAM, "Añadir un recordatorio")
    await inbot.say(SAM, "<b>B12</b> & D", language_code="es")
    await inbot.say(SAM, "8:00", language_code="es")
    await inbot.press(SAM, "lun")
    await inbot.press(SAM, "Listo")
    await inbot.press(SAM, "No")
    assert "Guardado. Te lo recordaré a las 08:00, lun." in inbot.last_text(SAM)
    await inbot.tick(ny(8, 8, 0))  # planned ahead (as every tick does), nothing on Sunday
    assert "Guardado" in inbot.last_text(SAM)
    await inbot.tick(ny(9, 8, 0))  # the next Monday
    reminder = inbot.messages(SAM)[-1]
    assert reminder["visible_text"] == "⏰ 08:00: tu recordatorio de <b>B12</b> & D."
    assert _buttons(reminder) == ["✅ Tomada", "⏰ Posponer 15 min", "Saltar"]
    await inbot.say(SAM, "/meds", language_code="es")
    assert "Tu equipo de atención no ve tus recordatorios" in inbot.last_text(SAM)
    await inbot.press(SAM, "Avisar a mi equipo tras 3")
    assert "Tu equipo de atención ve cuántos recordatorios marcas como tomados y recibe un aviso si no respondes 3 seguidos" in inbot.last_text(SAM)


async def test_discharge_stops_reminders_even_for_alumni(inbot: InProcessBot) -> None:
    from bot.db.models import Participant
    from bot.services.people import discharge

    inbot.clock.set(START)
    sam, _ = await _people(inbot)
    await _add(inbot, SAM, "evening", "20:00")
    async with inbot.ctx.sessionmaker() as s:
        participant = await s.get(Participant, sam)
        assert participant is not None
        await discharge(s, participant, inbot.clock.now(), alumni=True)
        await s.commit()
    for day in (2, 3, 4):
        await inbot.tick(ny(day, 19, 0))
        await inbot.tick(ny(day, 20, 0))
    assert not any("evening" in t for t in inbot.texts(SAM))
