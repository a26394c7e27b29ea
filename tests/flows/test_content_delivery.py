"""Psychoeducation and the participant's own shelf, in process, on SQLite and PostgreSQL: /learn by
topic, "Was this helpful?" and ⭐ Save, /favorites, /plan in the participant's own words, the
daily read (planned once per local date, by program week, skipping what was read, quiet hours
and pause respected), and `iopbot content stats`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.config import Settings
from bot.db.content_models import ContentReceipt
from bot.db.models import ActionStatus, ScheduledAction
from bot.sandbox.botapi import FakeBotAPI
from bot.services.learning.drip import DripPlanner, program_week
from bot.services.learning.shelf import content_library
from bot.services.learning.stats import content_stats
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

REPO = Path(__file__).resolve().parents[2]
DR, SAM = 900_201, 5_201
MONDAY_9AM_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the clock fixture's start


@pytest.fixture
async def drip_bot(settings: Settings, api: FakeBotAPI, db_url: str, clock: ManualClock
                   ) -> AsyncIterator[InProcessBot]:
    s = inproc_settings(settings, api, db_url, schedule=dataclasses.replace(settings.schedule, jitter_minutes=0.0))
    s = s.replace(content=dataclasses.replace(s.content, drip_every_days=1, drip_minutes_after_checkin=60))
    running = await InProcessBot.start(s, api, clock)
    yield running
    await running.close()


async def _enrolled(inbot: InProcessBot, **kwargs: object) -> int:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-cd", DR, inbot.clock.now())
        p = await add_participant(s, "P-cd", dr, SAM, inbot.clock.now(), **kwargs)  # type: ignore[arg-type]
        await s.commit()
        return p.id


def _buttons(message: dict) -> list[str]:  # type: ignore[type-arg]
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def test_learn_by_topic_helpful_save_and_favorites(inbot: InProcessBot) -> None:
    pid = await _enrolled(inbot)
    await inbot.say(SAM, "/learn")
    topics = inbot.messages(SAM)[-1]
    assert "Pick a topic" in topics["visible_text"]
    assert {"Stress", "Recovery", "Safety", "Mindfulness"} <= set(_buttons(topics))
    await inbot.press(SAM, "Stress")
    titles = inbot.messages(SAM)[-1]
    assert titles["message_id"] == topics["message_id"]  # the menu changes in place
    assert "Stress and your body" in _buttons(titles) and _buttons(titles)[-1] == "◀ All topics"
    await inbot.press(SAM, "Stress and your body")
    texts = inbot.texts(SAM)
    snippet = content_library(inbot.ctx).snippet("stress-and-your-body", "en")
    assert snippet is not None
    shown = texts[-1 - len(snippet.messages):-1]
    assert shown[0].startswith("Stress and your body") and "alarm" in shown[0]
    assert texts[-1] == "Was this helpful?"
    assert _buttons(inbot.messages(SAM)[-1]) == ["👍 Yes", "👎 No", "⭐ Save"]

    await inbot.press(SAM, "Yes")
    prompt = inbot.messages(SAM)[-1]
    assert "Was this helpful? Yes" in prompt["visible_text"] and _buttons(prompt) == ["⭐ Save"]
    await inbot.press(SAM, "Save")
    assert inbot.notices(SAM)[-1] == "Saved. /favorites shows what you saved."
    assert _buttons(inbot.messages(SAM)[-1]) == ["Remove from favorites"]

    await inbot.say(SAM, "/favorites")
    favorites = inbot.messages(SAM)[-1]
    assert "Your favorites" in favorites["visible_text"] and _buttons(favorites) == ["Stress and your body"]
    await inbot.say(SAM, "/learn")
    await inbot.press(SAM, "Stress")
    assert "✓ Stress and your body" in _buttons(inbot.messages(SAM)[-1])
    async with inbot.ctx.sessionmaker() as s:
        receipt = await s.scalar(select(ContentReceipt).where(ContentReceipt.participant_id == pid))
        assert receipt is not None and receipt.item_id == "stress-and-your-body"
        assert receipt.helpful is True and receipt.saved_at is not None and receipt.delivered_via == "learn"


async def test_plan_shows_the_participants_own_words_then_the_crisis_numbers(inbot: InProcessBot) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/plan")
    offer, crisis = inbot.texts(SAM)[-2:]
    assert "don't have a relapse-prevention plan yet" in offer and "988" in crisis
    await inbot.press(SAM, "Make my plan")
    await inbot.press(SAM, "Let's start")
    await inbot.press(SAM, "Next")
    assert "Your triggers" in inbot.last_text(SAM)
    await inbot.say(SAM, "Payday\nFights with <my> partner & friends")
    await inbot.press(SAM, "Skip")  # warning signs
    await inbot.say(SAM, "Call my sponsor")
    assert "People to call" in inbot.last_text(SAM)
    await inbot.say(SAM, "/plan")  # half-way: the parts so far; the exercise waits in /skills
    *plan, crisis = inbot.messages(SAM)[-2:]
    text = plan[0]["visible_text"]
    assert text.startswith("My relapse-prevention plan")
    assert "My triggers\nPayday\nFights with <my> partner & friends" in text
    assert "My warning signs\n(not filled in yet)" in text and "What I will do\nCall my sponsor" in text
    assert "911" in crisis["visible_text"] and _buttons(crisis) == ["Update my plan"]


async def test_the_daily_read_is_planned_once_per_day_by_program_week_and_skips_what_was_read(
        drip_bot: InProcessBot) -> None:
    pid = await _enrolled(drip_bot, checkin_time="09:00", quiet=("22:00", "07:00"))
    planner = drip_bot.ctx.parts.get(DripPlanner)
    await drip_bot.tick()
    await planner.plan(drip_bot.clock.now())  # again, as a second worker would: nothing new
    async with drip_bot.ctx.sessionmaker() as s:
        rows = (await s.scalars(select(ScheduledAction).where(ScheduledAction.kind == "content_drip")
                                .order_by(ScheduledAction.due_at))).all()
    assert [r.key for r in rows] == [f"content_drip:{pid}:2026-03-02", f"content_drip:{pid}:2026-03-03"]
    assert rows[0].due_at == MONDAY_9AM_NY + timedelta(hours=1)  # an hour after the 09:00 check-in

    week_one = [s.id for s in content_library(drip_bot.ctx).snippets("en", up_to_week=1)]
    assert len(week_one) >= 3
    await drip_bot.tick(MONDAY_9AM_NY + timedelta(minutes=59))
    assert drip_bot.messages(SAM) == []
    await drip_bot.tick(MONDAY_9AM_NY + timedelta(hours=1))
    first = content_library(drip_bot.ctx).snippet(week_one[0], "en")
    assert first is not None
    texts = drip_bot.texts(SAM)
    assert texts[0].startswith("📖 Today's short read") and first.title in texts[0]
    assert texts[-1] == "Was this helpful?"

    # The second one was read through /learn the same day: tomorrow brings the third.
    second = content_library(drip_bot.ctx).snippet(week_one[1], "en")
    assert second is not None
    await drip_bot.say(SAM, "/learn")
    await drip_bot.press(SAM, f"{drip_bot.ctx.t(f'learn.topic_{second.meta.topic}', 'en')}")
    await drip_bot.press(SAM, second.title)
    count = len(drip_bot.texts(SAM))
    await drip_bot.tick(MONDAY_9AM_NY + timedelta(days=1, hours=1))
    third = content_library(drip_bot.ctx).snippet(week_one[2], "en")
    assert third is not None
    new = [t for t in drip_bot.texts(SAM)[count:] if "Today's short read" in t]
    assert len(new) == 1 and third.title in new[0]

    # Paused: the next day's read is cancelled and nothing comes.
    await drip_bot.say(SAM, "/pause")
    await drip_bot.tick(MONDAY_9AM_NY + timedelta(days=1, hours=2))
    count = len(drip_bot.texts(SAM))
    await drip_bot.tick(MONDAY_9AM_NY + timedelta(days=2, hours=1))
    assert not any("Today's short read" in t for t in drip_bot.texts(SAM)[count:])
    async with drip_bot.ctx.sessionmaker() as s:
        statuses = {r.key[-10:]: r.status for r in (await s.scalars(
            select(ScheduledAction).where(ScheduledAction.kind == "content_drip"))).all()}
        receipts = (await s.scalars(select(ContentReceipt).where(ContentReceipt.participant_id == pid))).all()
    assert statuses["2026-03-02"] == statuses["2026-03-03"] == ActionStatus.SENT
    assert statuses.get("2026-03-04", ActionStatus.CANCELLED) == ActionStatus.CANCELLED
    assert {r.item_id: r.delivered_via for r in receipts} == {
        week_one[0]: "drip", week_one[1]: "learn", week_one[2]: "drip"}


def test_the_read_avoids_quiet_hours_and_program_weeks_count_from_consent(settings: Settings) -> None:
    from bot.context import AppContext

    ctx = AppContext(settings=settings, clock=ManualClock(MONDAY_9AM_NY), texts=None,  # type: ignore[arg-type]
                     sessionmaker=None)  # type: ignore[arg-type]
    planner = DripPlanner(ctx)
    consented = MONDAY_9AM_NY - timedelta(days=3)
    late = planner.wanted(7, "America/New_York", "21:30", "22:00", "07:00", consented, MONDAY_9AM_NY)
    # 22:30 is in quiet hours: deferred to their end, 07:00 the next morning (plus the fixed jitter).
    assert late[0]["intended_at"] == datetime(2026, 3, 3, 3, 30, tzinfo=UTC)
    due = late[0]["due_at"].astimezone(ZoneInfo("America/New_York"))
    assert (due.date().isoformat(), due.hour) == ("2026-03-03", 7) and due.minute < 5
    every_other = dataclasses.replace(settings.content, drip_every_days=2)
    ctx.settings = settings.replace(content=every_other)
    days = [r["payload"]["date"] for r in planner.wanted(7, "America/New_York", "09:00", "22:00", "07:00",
                                                          consented, MONDAY_9AM_NY)]
    assert days == ["2026-03-03"]  # day 4 after consent, not day 3
    zone = ZoneInfo("America/New_York")
    assert program_week(consented, datetime(2026, 3, 5).date(), zone) == 1  # day 7 of the program
    assert program_week(consented, datetime(2026, 3, 6).date(), zone) == 2  # day 8


async def test_content_stats_count_deliveries_answers_saves_and_runs(inbot: InProcessBot, db_url: str,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    await _enrolled(inbot)
    await inbot.say(SAM, "/learn")
    await inbot.press(SAM, "Stress")
    await inbot.press(SAM, "Stress and your body")
    await inbot.press(SAM, "No")
    await inbot.press(SAM, "Save")
    await inbot.say(SAM, "/skills")
    await inbot.press(SAM, "Paced breathing")
    await inbot.press(SAM, "Next")
    await inbot.press(SAM, "Not now")  # finished (a short path)
    await inbot.say(SAM, "/skills")
    await inbot.press(SAM, "5-4-3-2-1 grounding")  # started, not finished

    async with inbot.ctx.sessionmaker() as s:
        stats = {row.item_id: row for row in await content_stats(s, content_library(inbot.ctx))}
    stress = stats["stress-and-your-body"]
    assert (stress.kind, stress.delivered, stress.helpful_yes, stress.helpful_no, stress.saved) == (
        "snippet", 1, 0, 1, 1)
    assert (stats["paced-breathing"].started, stats["paced-breathing"].finished) == (1, 1)
    assert (stats["grounding-54321"].started, stats["grounding-54321"].finished) == (1, 0)
    assert stats["what-mindfulness-is"].delivered == 0  # every item is listed

    # The command an author runs.
    from bot.cli import main

    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n\n[content]\ndirectory = "{REPO / "content"}"\n')
    handlers, level = logging.root.handlers[:], logging.root.level  # the command sets up logging
    try:
        assert await asyncio.to_thread(main, ["--config", str(config), "content", "stats"]) == 0
        table = capsys.readouterr().out
        assert await asyncio.to_thread(main, ["--config", str(config), "content", "stats", "--json"]) == 0
        rows = {r["item_id"]: r for r in json.loads(capsys.readouterr().out)}
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
    line = next(row for row in table.splitlines() if row.startswith("stress-and-your-body "))
    assert line.split()[1:] == ["1", "0", "1", "1"]
    assert rows["grounding-54321"]["started"] == 1
