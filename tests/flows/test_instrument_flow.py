"""The weekly questionnaires as a participant and their clinician live them, in process, on SQLite
and PostgreSQL: PHQ-9 arrives on Monday after the check-in time, is answered with buttons and a
typed number, stored by item, scored and explained, then GAD-7 follows; item 9 above 0 gets the
crisis reply and pages the clinician whatever the total; and never twice in a week."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import Settings
from bot.db.instrument_models import InstrumentAnswer, InstrumentScore
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.sandbox.botapi import FakeBotAPI
from bot.services.participants import export_own_data
from tests.support.inproc import InProcessBot, add_participant, add_staff

MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
DR, SAM = 900_001, 5_001


@pytest.fixture
async def inbot(bot_settings: Settings, api: FakeBotAPI, clock: ManualClock) -> AsyncIterator[InProcessBot]:
    settings = bot_settings.replace(instruments=dataclasses.replace(bot_settings.instruments, enabled=True))
    running = await InProcessBot.start(settings, api, clock)
    yield running
    await running.close()


async def _enrolled(inbot: InProcessBot, locale: str = "en") -> int:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", DR, inbot.clock.now())
        p = await add_participant(s, "P-101", dr, SAM, inbot.clock.now(), checkin_time="11:00", locale=locale)
        await s.commit()
        return p.id


async def _phq9_arrives(inbot: InProcessBot) -> None:
    await inbot.tick(MONDAY_9AM_NY - timedelta(hours=1))
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=2, minutes=29))
    assert not any("PHQ-9" in t for t in inbot.texts(SAM))
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=2, minutes=30))  # 11:30 in New York
    first = inbot.messages(SAM)[-1]
    assert "PHQ-9" in first["visible_text"] and "1/9" in first["visible_text"]
    assert "Little interest or pleasure" in first["visible_text"]
    assert [b["text"] for row in first["reply_markup"]["inline_keyboard"] for b in row] == [
        "Not at all", "Several days", "More than half the days", "Nearly every day"]


async def test_phq9_then_gad7_scored_and_explained(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await _phq9_arrives(inbot)
    for label in ["Several days", "More than half the days", "Nearly every day", "Several days",
                  "Not at all", "Several days", "More than half the days"]:
        await inbot.press(SAM, label)
    await inbot.say(SAM, "1")  # typing the option's number answers like its button: item 8
    assert "9/9" in inbot.last_text(SAM)
    await inbot.press(SAM, "Not at all")  # item 9
    texts = inbot.texts(SAM)
    result = next(t for t in texts if "your total is" in t)
    assert "PHQ-9: your total is 11 out of 27" in result and "“Moderate”" in result
    assert "This is not a diagnosis" in result and "care team sees your answers" in result and "988" in result
    assert "GAD-7" in texts[-1] and "1/7" in texts[-1] and "nervous, anxious" in texts[-1]
    assert not any("911" in t and "right now" in t for t in texts[:-2])  # no crisis reply

    for _ in range(7):
        await inbot.press(SAM, "Nearly every day")
    assert "GAD-7: your total is 21 out of 21" in inbot.last_text(SAM) and "“Severe”" in inbot.last_text(SAM)
    async with inbot.ctx.sessionmaker() as s:
        scores = {x.instrument_id: (x.total, x.band, x.level) for x in (await s.scalars(select(InstrumentScore))).all()}
        answers = {a.item_id: a.value for a in (await s.scalars(select(InstrumentAnswer))).all()}
        row = await s.scalar(select(ScheduledAction).where(ScheduledAction.key == f"instrument:{pid}:2026-03-02"))
    assert scores == {"phq9": (11, "moderate", 0), "gad7": (21, "severe", 0)}
    assert answers["phq9_3"] == 3 and answers["phq9_8"] == 1 and answers["phq9_9"] == 0 and answers["gad7_7"] == 3
    assert row is not None and row.status == ActionStatus.ANSWERED
    assert inbot.texts(DR) == []  # a high total alone pages nobody
    async with inbot.ctx.sessionmaker() as s:
        participant = await s.get(Participant, pid)
        assert participant is not None
        mine = json.loads(await export_own_data(s, participant, inbot.clock.now()))
    assert [(q["instrument"], q["total"], q["band"]) for q in mine["questionnaires"]] == [
        ("phq9", 11, "moderate"), ("gad7", 21, "severe")]

    count = len(inbot.messages(SAM))
    await inbot.tick(MONDAY_9AM_NY + timedelta(days=1))
    assert len(inbot.messages(SAM)) == count


async def test_item9_above_zero_gets_the_crisis_reply_and_pages_whatever_the_total(inbot: InProcessBot) -> None:
    await _enrolled(inbot, locale="es")
    await inbot.tick(MONDAY_9AM_NY - timedelta(hours=1))
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=2))  # the check-in first, at 11:00
    await inbot.tick(MONDAY_9AM_NY + timedelta(hours=2, minutes=30))
    assert "Poco interés o placer" in inbot.last_text(SAM)
    for _ in range(8):
        await inbot.press(SAM, "Ningún día")
    await inbot.press(SAM, "Varios días")  # item 9 = 1: a total of 1, "minimal"
    texts = inbot.texts(SAM)
    crisis = next(i for i, t in enumerate(texts) if "988" in t and "911" in t)
    result = next(i for i, t in enumerate(texts) if "tu total es" in t)
    assert crisis < result and "PHQ-9: tu total es 1 de 27" in texts[result]
    assert not any("GAD-7" in t for t in texts)  # no more questions after a crisis reply
    await inbot.tick()
    assert "Safety alert: URGENT" in inbot.last_text(DR) and "P-101" in inbot.last_text(DR)
    assert "PHQ-9 item 9" in inbot.last_text(DR)
    async with inbot.ctx.sessionmaker() as s:
        score = await s.scalar(select(InstrumentScore))
    assert score is not None and (score.total, score.band, score.level) == (1, "minimal", 2)
    assert score.reasons == "trigger:phq9_item9"
