"""/techhelp, in process, on SQLite and PostgreSQL: the steps for a failing video link (with the
session's Join button and the program's phone-in number when it has one), and "Tell my facilitator
I can't connect": the facilitator of the session in progress or next today is told, else the
clinician; someone who cannot be reached hands on to the next person; the participant hears who
was told only once it was delivered, or plainly that nobody could be; a second tap tells nobody
again; staff are refused."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import Settings
from bot.db.models import AuditEntry, Disclosure, ParticipantEvent, Staff
from bot.sandbox.botapi import FakeBotAPI
from bot.services.calendar import occurrences as cal
from bot.services.calendar.apply import import_calendar
from bot.services.calendar.csv_reader import parse_csv
from tests.support.inproc import InProcessBot, add_participant, add_staff

MON_2PM_CHICAGO = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
FAC, CLIN, BACKUP, PAT, LONER = 920_001, 920_002, 920_003, 7_001, 7_002
LINK = "https://zoom.us/j/5550002"
CSV = ("title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule\n"
       f'Afternoon group,group,2026-03-02T14:00,90,America/Chicago,{LINK},dr-fac,Afternoon,"FREQ=WEEKLY;BYDAY=MO"\n')
TOLD_FACILITATOR = "Your facilitator has been told you can't connect"
TOLD_TEAM = "Your care team has been told you can't connect"
NOBODY = "I couldn't reach your facilitator or your care team"


async def _program(inbot: InProcessBot, *, locale: str = "en") -> dict[str, int]:
    """A facilitator, a clinician, P-tech in the Monday 2 PM (Chicago) group, P-alone in no group."""
    now = inbot.clock.now()
    async with inbot.ctx.sessionmaker() as s:
        fac = await add_staff(s, "dr-fac", FAC, now)
        clin = await add_staff(s, "dr-clin", CLIN, now)
        pat = await add_participant(s, "P-tech", clin, PAT, now, locale=locale)
        loner = await add_participant(s, "P-alone", clin, LONER, now)
        report = await import_calendar(s, inbot.ctx.settings, parse_csv(CSV), now)
        assert report is not None and len(report.added) == 1
        group = await cal.group_by_name(s, "Afternoon")
        assert group is not None
        await cal.set_membership(s, inbot.ctx.settings, group, [pat], now, member=True)
        await s.commit()
        return {"fac": fac.id, "clin": clin.id, "pat": pat.id, "loner": loner.id, "session": report.added[0].id}


def _buttons(inbot: InProcessBot, chat: int) -> list[dict]:
    return [b for row in (inbot.messages(chat)[-1].get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def test_the_facilitator_of_todays_session_is_told(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.say(PAT, "/techhelp")
    steps = inbot.last_text(PAT)
    assert "Can't get into your session?" in steps and "/sessions" in steps and "Wi-Fi" in steps
    assert "by phone" not in steps  # no phone-in number configured
    join, tell = _buttons(inbot, PAT)
    assert join == {"text": "Join", "url": LINK} and tell["text"] == "Tell my facilitator I can't connect"
    await inbot.press(PAT, "Tell my facilitator")
    assert inbot.notices(PAT)[-1] == "Telling them now…"
    assert TOLD_FACILITATOR not in inbot.last_text(PAT)  # not before it was delivered
    await inbot.tick()
    notice = inbot.last_text(FAC)
    assert notice.startswith(f"P-tech can't connect to the group session on Mon, Mar 2, 2:00 PM CST "
                             f"(session {ids['session']})")
    assert "Afternoon group" not in notice  # minimum necessary: no session title
    assert not any("can't connect" in t for t in inbot.texts(CLIN))  # the facilitator is the one who can help now
    await inbot.tick()
    assert TOLD_FACILITATOR in inbot.last_text(PAT)
    async with inbot.ctx.sessionmaker() as s:
        (disclosure,) = (await s.scalars(select(Disclosure).where(Disclosure.participant_id == ids["pat"]))).all()
        assert (disclosure.recipient, disclosure.kind, disclosure.reference) == (f"staff:{ids['fac']}", "notice",
                                                                                  "cant_connect")
        (event,) = (await s.scalars(select(ParticipantEvent).where(ParticipantEvent.kind == "cant_connect"))).all()
        assert event.detail.startswith("occurrence:")
    # A second tap minutes later tells nobody again.
    inbot.clock.advance(minutes=3)
    await inbot.press(PAT, "Tell my facilitator")
    assert inbot.notices(PAT)[-1] == "I told them a few minutes ago."
    await inbot.tick()
    assert sum("can't connect" in t for t in inbot.texts(FAC)) == 1


async def test_during_the_session_and_when_the_facilitator_cannot_be_reached(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    inbot.clock.set(MON_2PM_CHICAGO + timedelta(minutes=20))  # in progress
    async with inbot.ctx.sessionmaker() as s:
        fac = await s.get(Staff, ids["fac"])
        assert fac is not None
        fac.chat_id = None  # never opened the bot
        await s.commit()
    await inbot.say(PAT, "/techhelp")
    assert _buttons(inbot, PAT)[0]["url"] == LINK
    await inbot.press(PAT, "Tell my facilitator")
    await inbot.tick()
    await inbot.tick()
    assert any("P-tech can't connect to the group session" in t for t in inbot.texts(CLIN))
    assert TOLD_TEAM in inbot.last_text(PAT)
    # Blocked: Telegram answers 403 to the facilitator's notice; the clinician is told instead.
    async with inbot.ctx.sessionmaker() as s:
        fac = await s.get(Staff, ids["fac"])
        assert fac is not None
        fac.chat_id = FAC
        await s.commit()
    inbot.api.block(FAC, notify=False)
    inbot.clock.advance(minutes=11)
    await inbot.press(PAT, "Tell my facilitator")
    for _ in range(3):
        await inbot.tick()
    assert sum("P-tech can't connect" in t for t in inbot.texts(CLIN)) == 2
    assert inbot.last_text(PAT).startswith(TOLD_TEAM)


async def test_no_session_today_tells_the_clinician_and_nobody_reachable_is_said_plainly(
        inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.say(LONER, "/techhelp")
    assert [b["text"] for b in _buttons(inbot, LONER)] == ["Tell my facilitator I can't connect"]  # no Join link
    await inbot.press(LONER, "Tell my facilitator")
    await inbot.tick()
    await inbot.tick()
    assert any("P-alone can't connect to their video session. I found no session" in t for t in inbot.texts(CLIN))
    assert TOLD_TEAM in inbot.last_text(LONER)
    async with inbot.ctx.sessionmaker() as s:
        clin = await s.get(Staff, ids["clin"])
        assert clin is not None
        clin.active = False
        await s.commit()
    inbot.clock.advance(minutes=11)
    await inbot.press(LONER, "Tell my facilitator")
    await inbot.tick()
    said = inbot.last_text(LONER)
    assert NOBODY in said and "988" in said


async def test_staff_are_refused_and_audited(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    await inbot.say(FAC, "/techhelp")
    assert "That command is for participants" in inbot.last_text(FAC)
    async with inbot.ctx.sessionmaker() as s:
        (entry,) = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "refused:/techhelp"))).all()
        assert entry.actor == f"staff:{ids['fac']}" and entry.allowed is False


@pytest.fixture
async def phone_bot(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock) -> AsyncIterator[InProcessBot]:
    settings = bot_settings.replace(outreach=dataclasses.replace(bot_settings.outreach, techhelp_phone="555-0142"))
    running = await InProcessBot.start(settings, api, clock)
    yield running
    await running.close()


async def test_spanish_and_the_phone_in_number(phone_bot: InProcessBot) -> None:
    await _program(phone_bot, locale="es")
    await phone_bot.say(PAT, "/techhelp")
    steps = phone_bot.last_text(PAT)
    assert "¿No puedes entrar a tu sesión?" in steps and "llama al 555-0142" in steps
    assert [b["text"] for b in _buttons(phone_bot, PAT)] == ["Entrar",
                                                             "Avisar a mi facilitador que no puedo conectarme"]
    await phone_bot.press(PAT, "Avisar")
    await phone_bot.tick()
    await phone_bot.tick()
    assert "Tu facilitador ya sabe que no puedes conectarte" in phone_bot.last_text(PAT)


async def test_with_nobody_reachable_no_tap_says_anyone_was_told(inbot: InProcessBot) -> None:
    ids = await _program(inbot)
    async with inbot.ctx.sessionmaker() as s:
        clin = await s.get(Staff, ids["clin"])
        assert clin is not None
        clin.active = False
        await s.commit()
    await inbot.say(LONER, "/techhelp")
    await inbot.press(LONER, "Tell my facilitator")
    assert "couldn't reach anyone" in inbot.notices(LONER)[-1]
    assert not any("Telling them now" in n for n in inbot.notices(LONER))
    await inbot.tick()
    assert NOBODY in inbot.last_text(LONER)
    inbot.clock.advance(minutes=2)
    await inbot.press(LONER, "Tell my facilitator")  # within ten minutes, and still nobody
    assert "couldn't reach anyone" in inbot.notices(LONER)[-1]
    assert not any("I told them" in n for n in inbot.notices(LONER))

    async with inbot.ctx.sessionmaker() as s:  # the clinician is back: the next tap tells them
        clin = await s.get(Staff, ids["clin"])
        assert clin is not None
        clin.active = True
        await s.commit()
    inbot.clock.advance(minutes=2)
    await inbot.press(LONER, "Tell my facilitator")
    assert "Telling them now" in inbot.notices(LONER)[-1]
    await inbot.tick()
    await inbot.tick()
    assert TOLD_TEAM in inbot.last_text(LONER)
    inbot.clock.advance(minutes=2)
    await inbot.press(LONER, "Tell my facilitator")  # delivered a few minutes ago: not again
    assert "I told them a few minutes ago" in inbot.notices(LONER)[-1]
    assert sum("P-alone can't connect" in t for t in inbot.texts(CLIN)) == 1
