"""What a clinician sees, in process, on SQLite and PostgreSQL: /caseload with those needing
attention first (an open alert, then a low-mood check-in, then three missed check-ins), /trends
of one participant over 14 days, /digest of the last 24 hours; another clinician's participant
is refused and audited, a lead sees everyone, Spanish works, and participants are refused; after two
PHQ-9s the caseload shows the latest total and its change."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import Settings
from bot.content.render import TELEGRAM_TEXT_LIMIT, utf16_len
from bot.db.calendar_models import ProgramSession
from bot.db.models import AuditEntry, Disclosure, Participant, StaffRole
from bot.safety.triggers import TriggerThresholds
from bot.sandbox.botapi import FakeBotAPI
from bot.services.calendar import occurrences as cal
from bot.services.calendar.apply import import_calendar
from bot.services.calendar.attendance import cant_attend
from bot.services.calendar.csv_reader import parse_csv
from tests.support.inproc import InProcessBot, add_participant, add_staff

MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start
FIRST_CHECKIN = MONDAY_9AM_NY + timedelta(hours=1)  # 10:00 in New York
THURSDAY_EARLY = datetime(2026, 3, 5, 4, 0, tzinfo=UTC)  # after the third check-in expired
DR, ORTIZ, LEAD = 900_001, 900_002, 900_003
FINE, LOW, SILENT, FLAGGED, OTHER = 5_001, 5_002, 5_003, 5_004, 5_005
CSV = ("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule\n"
       'Evening group,group,2026-03-02T14:00,90,America/Chicago,https://zoom.us/j/1,dr-lee,Mon-Wed,'
       '"FREQ=WEEKLY;BYDAY=MO,WE"\n')
ANSWERS = {
    FINE: ("7", "0", "7", "Yes", "No", "Skip"),
    LOW: ("1", "2", "7", "Yes", "No", "Skip"),  # mood 1: concern
    FLAGGED: ("5", "3", "6", "Yes", "Yes", "Skip"),  # yes to the safety question: urgent, alert open
}


async def _program(inbot: InProcessBot, *, staff_locale: str = "en") -> dict[str, int]:
    """dr-lee with four participants, dr-ortiz with one, and a lead; P-103 is in a weekly group."""
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        lee = await add_staff(s, "dr-lee", DR, now)
        lee.locale = staff_locale
        ortiz = await add_staff(s, "dr-ortiz", ORTIZ, now)
        lead = await add_staff(s, "lin-chen", LEAD, now)
        lead.role = StaffRole.LEAD
        ids = {"lee": lee.id, "ortiz": ortiz.id}
        for alias, chat in (("P-101", FINE), ("P-102", LOW), ("P-103", SILENT), ("P-104", FLAGGED)):
            ids[alias] = (await add_participant(s, alias, lee, chat, now, checkin_time="10:00")).id
        ids["P-201"] = (await add_participant(s, "P-201", ortiz, OTHER, now, checkin_time="10:00")).id
        report = await import_calendar(s, inbot.ctx.settings, parse_csv(CSV), now)
        assert report is not None and len(report.added) == 1
        ids["session"] = report.added[0].id
        group = await cal.group_by_name(s, "Mon-Wed")
        assert group is not None
        silent = await s.get(Participant, ids["P-103"])
        assert silent is not None
        await cal.set_membership(s, inbot.ctx.settings, group, [silent], now, member=True)
        await s.commit()
    return ids


async def _answer(inbot: InProcessBot, chat: int, labels: tuple[str, ...]) -> None:
    for label in labels:
        await inbot.press(chat, label)
    assert "Thank you for checking in" in inbot.texts(chat)[-1] or "care team" in inbot.texts(chat)[-1]


async def _three_days(inbot: InProcessBot, ids: dict[str, int]) -> None:
    """Check-ins on Mon, Tue, Wed; only Wednesday's is answered, and P-103 answers none. Then
    P-103 says they can't attend next Monday's group."""
    await inbot.tick()
    for day in range(3):
        await inbot.tick(FIRST_CHECKIN + timedelta(days=day))
        if day == 2:
            for chat, labels in ANSWERS.items():
                await _answer(inbot, chat, labels)
        await inbot.tick(FIRST_CHECKIN + timedelta(days=day, hours=12))  # unanswered ones expire
    await inbot.tick(THURSDAY_EARLY)
    async with inbot.ctx.sessionmaker() as s:
        ps = await s.get(ProgramSession, ids["session"])
        silent = await s.get(Participant, ids["P-103"])
        assert ps is not None and silent is not None
        (occurrence,) = await cal.occurrence_on(s, ps, date(2026, 3, 9), THURSDAY_EARLY)
        await cant_attend(s, inbot.ctx.settings, silent, occurrence, THURSDAY_EARLY)
        await s.commit()


async def _command(inbot: InProcessBot, chat: int, text: str) -> list[str]:
    """What `chat` received in answer to `text` (and nothing sent before it)."""
    before = len(inbot.messages(chat))
    await inbot.say(chat, text)
    return inbot.texts(chat)[before:]


async def _audit(inbot: InProcessBot) -> list[tuple[str, str, int | None, bool]]:
    async with inbot.ctx.sessionmaker() as s:
        return [(a.actor, a.action, a.participant_id, a.allowed)
                for a in (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()]


async def test_caseload_shows_who_needs_attention_first(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await _three_days(inbot, ids)
    (text,) = await _command(inbot, DR, "/caseload")
    order = [text.index(alias) for alias in ("P-104", "P-102", "P-103", "P-101")]
    assert order == sorted(order), text  # open alert, then concern, then missed, then the rest
    assert "P-201" not in text  # dr-ortiz's participant
    entries = {e.split(" · ")[0].split()[-1]: e for e in text.split("\n\n")[1:-1]}
    assert entries["P-104"].startswith("🚨 P-104 · active · open alerts: 1")
    assert "Last check-in Wed, Mar 4: mood 5, craving 3 · urgent: said yes to the safety question" in entries["P-104"]
    assert entries["P-102"].startswith("⚠️ P-102 · active")
    assert "Last check-in Wed, Mar 4: mood 1, craving 2 · concern: low mood" in entries["P-102"]
    assert entries["P-103"].startswith("⏰ P-103 · active")
    assert "No check-in answered yet" in entries["P-103"]
    assert "Missed check-ins in a row: 3" in entries["P-103"]
    assert "Can't attend: Mon, Mar 9, 2:00 PM CDT" in entries["P-103"]
    assert entries["P-101"] == "• P-101 · active\nLast check-in Wed, Mar 4: mood 7, craving 0"
    assert text.startswith("Your caseload (4), who needs attention first")
    assert (f"staff:{ids['lee']}", "view:caseload", None, True) in await _audit(inbot)

    # A check-in sent a moment ago is not a miss yet: P-103 has Thursday's open, unanswered.
    await inbot.tick(FIRST_CHECKIN + timedelta(days=3))
    (text,) = await _command(inbot, DR, "/caseload")
    assert "Missed check-ins in a row: 4" not in text and "Missed check-ins in a row: 3" in text


async def test_trends_of_one_participant_over_14_days(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await _three_days(inbot, ids)
    (text,) = await _command(inbot, DR, "/trends P-102")
    lines = text.split("\n")
    assert lines[0] == "Trends: P-102, Thu, Feb 19 to Wed, Mar 4 (14 days)"
    assert "Mood (0–10): " + "·" * 13 + "▂ last 1, average 1" in lines
    assert "Cravings (0–10): " + "·" * 13 + "▂ last 2, average 2" in lines
    assert "Sleep (hours): " + "·" * 13 + "▅ last 7, average 7" in lines
    assert "Medication: " + "·" * 13 + "✓ taken 1 of 1 days" in lines
    assert "Check-ins answered: 1 of 3 (33%)" in lines  # Monday's and Tuesday's expired unanswered
    assert "Sessions held: 0, attended: 0, not there: 0 (as marked by the facilitator), said they can't attend: 0" in lines
    assert "Safety alerts: 0 (open: 0)" in lines
    assert "Wed, Mar 4: mood 1, craving 2, sleep 7, medication yes · ⚠️ concern" in lines
    assert lines[-2:] == ["Wed, Mar 4: mood 1, craving 2, sleep 7, medication yes · ⚠️ concern",
                          "Tue, Mar 3 back to Thu, Feb 19: no check-in (13 days)"]  # newest first
    (text,) = await _command(inbot, DR, "/trends p-104")  # the alias in any case
    assert "Safety alerts: 1 (open: 1)" in text and "⚠️ urgent" in text
    # P-103's group met on Monday and Wednesday.
    (text,) = await _command(inbot, DR, "/trends P-103")
    assert "Sessions held: 2, attended: 0, not there: 0 (as marked by the facilitator), said they can't attend: 0" in text
    assert "Check-ins answered: 0 of 3 (0%)" in text
    audit = await _audit(inbot)
    assert (f"staff:{ids['lee']}", "view:trends", ids["P-102"], True) in audit


async def test_trends_needs_an_alias_and_refuses_another_clinicians_participant(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick()
    assert await _command(inbot, DR, "/trends") == [
        "Type /trends and a participant's alias, like /trends P-101. /caseload lists the aliases."]
    # An alias that does not exist and another clinician's participant get the same answer: the
    # reply does not reveal which aliases exist outside the caseload. Both are audited.
    for alias in ("P-999", "P-201"):
        assert await _command(inbot, DR, f"/trends {alias}") == [
            f"No participant {alias} on your caseload, so I can't show trends. Type /trends and an alias from "
            "/caseload, like /trends P-101. This request was logged."]
    audit = await _audit(inbot)
    assert (f"staff:{ids['lee']}", "refused:/trends", ids["P-201"], False) in audit
    assert (f"staff:{ids['lee']}", "refused:/trends", None, False) in audit
    # The program lead sees everyone, dr-ortiz's participant included.
    (text,) = await _command(inbot, LEAD, "/trends P-201")
    assert text.startswith("Trends: P-201")
    (text,) = await _command(inbot, LEAD, "/caseload")
    assert text.startswith("Your caseload (5)")
    assert all(alias in text for alias in ("P-101", "P-102", "P-103", "P-104", "P-201"))
    # A participant gets the staff-only refusal, audited like any other.
    assert await _command(inbot, FINE, "/trends P-101") == ["That command is for staff. /help shows what you can do."]
    assert await _command(inbot, FINE, "/digest") == ["That command is for staff. /help shows what you can do."]
    audit = await _audit(inbot)
    assert (f"participant:{ids['P-101']}", "refused:/trends", ids["P-101"], False) in audit
    assert (f"participant:{ids['P-101']}", "refused:/digest", ids["P-101"], False) in audit


async def test_digest_of_the_last_24_hours(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await _three_days(inbot, ids)
    (text,) = await _command(inbot, DR, "/digest")
    # Times in the reader's zone: dr-lee has none of their own, so the program's (New York).
    assert text.startswith("Digest: the last 24 hours (caseload: 4, until 2026-03-04 23:00 EST)")
    sections = {s.split("\n")[0]: s.split("\n")[1:] for s in text.split("\n\n")[1:]}
    assert sections["Safety alerts"] == ["🚨 URGENT – P-104 – open, 2026-03-04 10:00 EST"]
    assert sections["Concern in check-ins"] == [
        "⚠️ P-104 – Wed, Mar 4: urgent, said yes to the safety question",
        "⚠️ P-102 – Wed, Mar 4: concern, low mood"]
    assert sections["Missed check-ins"] == ["⏰ P-103 – missed 1; in a row now: 3"]
    assert sections["Absences reported"] == ["• P-103 – can't attend Mon, Mar 9, 2:00 PM CDT"]
    assert "P-201" not in text
    async with inbot.ctx.sessionmaker() as s:
        disclosed = {(d.participant_id, d.recipient, d.kind) for d in (await s.scalars(select(Disclosure))).all()
                     if d.kind == "digest"}
    assert disclosed == {(ids[a], f"staff:{ids['lee']}", "digest") for a in ("P-102", "P-103", "P-104")}
    assert (f"staff:{ids['lee']}", "view:digest", None, True) in await _audit(inbot)
    # dr-ortiz's digest has only their participant, who has not answered once.
    (text,) = await _command(inbot, ORTIZ, "/digest")
    assert "⏰ P-201 – missed 1; in a row now: 3" in text and "P-10" not in text
    # The bot was down for a day and a half: the check-in due meanwhile was never sent, and says so.
    await inbot.tick(THURSDAY_EARLY + timedelta(days=1, hours=20))
    (text,) = await _command(inbot, ORTIZ, "/digest")
    assert text.endswith("Not sent in time (the bot was down)\n• check-ins: 1"), text


async def test_spanish_staff_read_it_in_spanish(inbot: InProcessBot) -> None:
    ids = await _program(inbot, staff_locale="es")
    await _three_days(inbot, ids)
    (text,) = await _command(inbot, DR, "/caseload")
    assert text.startswith("Tus participantes (4), primero quien necesita atención")
    assert "Último chequeo mié 4 mar: ánimo 1, deseo de consumo 2 · preocupación: ánimo bajo" in text
    assert "Chequeos sin responder seguidos: 3" in text and "No puede asistir: lun 9 mar, 14:00 CDT" in text
    (text,) = await _command(inbot, DR, "/trends P-102")
    assert text.startswith("Evolución: P-102, del jue 19 feb al mié 4 mar (14 días)")
    assert "Chequeos respondidos: 1 de 3 (33%)" in text
    assert "mié 4 mar: ánimo 1, deseo 2, sueño 7, medicación sí · ⚠️ preocupación" in text
    (text,) = await _command(inbot, DR, "/digest")
    assert text.startswith("Resumen: las últimas 24 horas")
    assert "⏰ P-103 – sin responder: 1; seguidos ahora: 3" in text
    (text,) = await _command(inbot, DR, "/trends")
    assert text.startswith("Escribe /trends y el alias de un participante")


async def test_a_long_caseload_is_split_into_messages_telegram_accepts(inbot: InProcessBot) -> None:
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        lead = await add_staff(s, "lin-chen", LEAD, now)
        lead.role = StaffRole.LEAD
        for n in range(150):
            await add_participant(s, f"P-{n:03d}-" + "x" * 40, lead, 10_000 + n, now)
        await s.commit()
    texts = await _command(inbot, LEAD, "/caseload")
    assert len(texts) >= 2
    assert all(utf16_len(t) <= TELEGRAM_TEXT_LIMIT for t in texts)
    joined = "\n\n".join(texts)
    assert all(f"P-{n:03d}-" in joined for n in range(150))
    assert all(t.split("\n")[0] for t in texts)  # no message starts with an empty line


@pytest.fixture
async def strict_bot(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock) -> AsyncIterator[InProcessBot]:
    settings = bot_settings.replace(triggers=dataclasses.replace(TriggerThresholds(), low_mood=4))
    running = await InProcessBot.start(settings, api, clock)
    yield running
    await running.close()


async def test_configured_trigger_thresholds_decide_what_is_a_concern(strict_bot: InProcessBot) -> None:
    now = strict_bot.clock.now()
    async with strict_bot.ctx.sessionmaker() as s:
        lee = await add_staff(s, "dr-lee", DR, now)
        await add_participant(s, "P-101", lee, FINE, now, checkin_time="10:00")
        await s.commit()
    await strict_bot.tick()
    await strict_bot.tick(FIRST_CHECKIN)
    await _answer(strict_bot, FINE, ("4", "0", "7", "Yes", "No", "Skip"))  # 4: fine by default, low here
    assert any("Your care team will see this" in t for t in strict_bot.texts(FINE))
    (text,) = await _command(strict_bot, DR, "/caseload")
    assert "mood 4, craving 0 · concern: low mood" in text


async def test_staff_without_participants(inbot: InProcessBot) -> None:
    async with inbot.ctx.sessionmaker() as s:
        await add_staff(s, "dr-new", DR, inbot.clock.now())
        await s.commit()
    assert await _command(inbot, DR, "/caseload") == ["No participants are assigned to you yet."]
    assert await _command(inbot, DR, "/digest") == ["No participants are assigned to you yet."]


async def test_a_message_of_concern_shows_in_the_caseload_and_the_digest(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.tick()
    await inbot.say(FINE, "I used to cut, 200 days clean")  # past and recovery talk: concern, nobody paged
    assert inbot.texts(DR) == []
    (text,) = await _command(inbot, DR, "/caseload")
    entry = next(e for e in text.split("\n\n") if "P-101" in e)
    assert entry.startswith("⚠️ P-101 · active") and text.index("P-101") < text.index("P-102")
    assert "Messages flagged as concern in the last 7 days: 1" in entry
    (text,) = await _command(inbot, DR, "/digest")
    assert "Concern in messages (no alert: nobody was paged)\n⚠️ P-101 – messages: 1; self-harm" in text
    assert "cut" not in text  # never the participant's words
    async with inbot.ctx.sessionmaker() as s:
        disclosed = {d.participant_id for d in (await s.scalars(select(Disclosure))).all() if d.kind == "digest"}
    assert disclosed == {ids["P-101"]}


@pytest.fixture
async def phq9_bot(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock) -> AsyncIterator[InProcessBot]:
    settings = bot_settings.replace(instruments=dataclasses.replace(bot_settings.instruments, enabled=True,
                                                                    ask=("phq9",)))
    running = await InProcessBot.start(settings, api, clock)
    yield running
    await running.close()


async def test_caseload_shows_the_latest_phq9_and_its_change(phq9_bot: InProcessBot) -> None:
    inbot = phq9_bot
    async with inbot.ctx.sessionmaker() as s:
        lee = await add_staff(s, "dr-lee", DR, inbot.clock.now())
        await add_participant(s, "P-101", lee, FINE, inbot.clock.now(), checkin_time="11:00")
        await s.commit()
    await inbot.tick(MONDAY_9AM_NY - timedelta(hours=1))
    for week, answer in ((0, "Several days"), (1, "More than half the days")):
        await inbot.tick(MONDAY_9AM_NY + timedelta(weeks=week, hours=2))  # the check-in first, at 11:00
        await inbot.tick(MONDAY_9AM_NY + timedelta(weeks=week, hours=2, minutes=30))  # then PHQ-9 at 11:30
        assert "PHQ-9" in inbot.last_text(FINE) and "1/9" in inbot.last_text(FINE)
        for _ in range(8):
            await inbot.press(FINE, answer)
        await inbot.press(FINE, "Not at all")  # item 9
        assert "PHQ-9: your total is" in inbot.last_text(FINE)
    (text,) = await _command(inbot, DR, "/caseload")
    entry = next(e for e in text.split("\n\n") if "P-101" in e)
    assert entry.startswith("⚠️ P-101 · active")  # a rise of 8: marked
    assert ("PHQ-9 16 moderately severe, Mon, Mar 9 (▲8 since Mon, Mar 2) · ⚠️ a rise of 5 points or more"
            in entry), entry
