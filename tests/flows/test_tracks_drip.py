"""The daily read by track, in process, on SQLite and PostgreSQL (#15 item 8): two participants who
joined the same day on different tracks get the same general reads at first and then, on the same
day, different ones; /track ALIAS NAME from their clinician changes what comes next (another
clinician is refused, and the refusal is audited). The injected clock moves; nothing sleeps."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiogram import Dispatcher
from sqlalchemy import select, update

from bot.clock import ManualClock
from bot.config import Settings
from bot.db.content_models import ContentReceipt, DeliveredVia
from bot.db.models import AuditEntry, Participant
from bot.sandbox.botapi import FakeBotAPI
from bot.services.learning.drip import pick_snippet
from bot.services.learning.receipts import record_delivery
from bot.services.learning.shelf import content_library
from bot.telegram.handlers import tracks as track_handlers
from tests.support.inproc import InProcessBot, add_participant, add_staff, inproc_settings

DR, OTHER_DR, SU, MH = 900_301, 900_302, 5_301, 5_302
DRIP_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York: an hour after the check-in
READ = "Today's short read"


def _with_track_router(dispatcher: Dispatcher) -> None:
    """/track's router before the fallback, as bot/app.py is to include it (and a no-op once it does)."""
    router = track_handlers.router
    if router.parent_router is dispatcher:
        return
    if router.parent_router is not None:  # left attached by an earlier test's dispatcher
        router.parent_router.sub_routers.remove(router)
        router._parent_router = None
    names = [r.name for r in dispatcher.sub_routers]
    dispatcher.sub_routers.insert(names.index("fallback"), router)
    router._parent_router = dispatcher


@pytest.fixture
async def track_bot(settings: Settings, api: FakeBotAPI, db_url: str, clock: ManualClock
                    ) -> AsyncIterator[InProcessBot]:
    s = inproc_settings(settings, api, db_url, schedule=dataclasses.replace(settings.schedule, jitter_minutes=0.0))
    s = s.replace(content=dataclasses.replace(s.content, drip_every_days=1, drip_minutes_after_checkin=60,
                                              tracks=("mental_health", "substance_use")))
    running = await InProcessBot.start(s, api, clock)
    _with_track_router(running.running.dispatcher)
    yield running
    await running.close()


async def _people(inbot: InProcessBot) -> dict[str, int]:
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-tr", DR, inbot.clock.now())
        await add_staff(s, "dr-else", OTHER_DR, inbot.clock.now())
        su = await add_participant(s, "P-su", dr, SU, inbot.clock.now())
        mh = await add_participant(s, "P-mh", dr, MH, inbot.clock.now())
        su.track, mh.track = "substance_use", "mental_health"
        await s.commit()
        return {"P-su": su.id, "P-mh": mh.id}


def _reads(inbot: InProcessBot, chat: int) -> list[str]:
    return [t for t in inbot.texts(chat) if READ in t]


def _title(inbot: InProcessBot, text: str) -> str:
    """The id of the snippet whose title heads this read."""
    library = content_library(inbot.ctx)
    found = [s.id for s in library.snippets("en") if s.title in text.split("\n\n")[1]]
    assert len(found) == 1, text
    return found[0]


async def _receipts(inbot: InProcessBot, participant_id: int) -> list[str]:
    async with inbot.ctx.sessionmaker() as s:
        return list((await s.scalars(select(ContentReceipt.item_id).where(
            ContentReceipt.participant_id == participant_id).order_by(ContentReceipt.id))).all())


async def test_two_tracks_get_different_reads_on_the_same_day(track_bot: InProcessBot) -> None:
    ids = await _people(track_bot)
    library = content_library(track_bot.ctx)
    # What each track should get over its first week, day by day (program week 1 throughout).
    expected: dict[str, list[str]] = {"P-su": [], "P-mh": []}
    for alias, track in (("P-su", "substance_use"), ("P-mh", "mental_health")):
        for _ in range(7):
            snippet = pick_snippet(library, "en", track, 1, expected[alias])
            if snippet is not None:
                expected[alias].append(snippet.id)
    differ = next(day for day, (a, b) in enumerate(zip(expected["P-su"], expected["P-mh"], strict=False)) if a != b)
    assert differ < 7  # within the first week the tracks part ways

    for day in range(differ + 1):
        await track_bot.tick(DRIP_AT - timedelta(hours=2) + timedelta(days=day))  # plan today and tomorrow
        await track_bot.tick(DRIP_AT + timedelta(days=day))
    su_reads, mh_reads = _reads(track_bot, SU), _reads(track_bot, MH)
    assert len(su_reads) == len(mh_reads) == differ + 1  # one read a day each
    assert [_title(track_bot, t) for t in su_reads] == expected["P-su"][:differ + 1]
    assert [_title(track_bot, t) for t in mh_reads] == expected["P-mh"][:differ + 1]
    assert _title(track_bot, su_reads[-1]) != _title(track_bot, mh_reads[-1])  # the same day, different reads
    su_meta = library.snippet(expected["P-su"][differ], "en")
    assert su_meta is not None and su_meta.meta.tracks == ("substance_use",)
    # Nobody gets the other track's snippets.
    for item_id in await _receipts(track_bot, ids["P-mh"]):
        snippet = library.snippet(item_id, "en")
        assert snippet is not None and snippet.meta.for_track("mental_health"), item_id
    assert await _receipts(track_bot, ids["P-su"]) == expected["P-su"][:differ + 1]


async def test_track_command_changes_the_next_read_and_refuses_another_caseload(track_bot: InProcessBot) -> None:
    ids = await _people(track_bot)
    await track_bot.say(DR, "/track")
    assert "/track P-mh mental_health" in track_bot.last_text(DR) and "substance_use" in track_bot.last_text(DR)
    await track_bot.say(DR, "/track P-mh")
    assert track_bot.last_text(DR).startswith("P-mh is on the track mental_health.")

    # Another clinician: not their participant. Refused with the same words as "no such alias", audited.
    await track_bot.say(OTHER_DR, "/track P-mh substance_use")
    refused = track_bot.last_text(OTHER_DR)
    assert refused.startswith("No participant P-mh on your caseload") and "logged" in refused
    await track_bot.say(OTHER_DR, "/track P-nobody substance_use")
    assert track_bot.last_text(OTHER_DR).startswith("No participant P-nobody on your caseload")
    await track_bot.say(DR, "/track P-mh dual")
    assert track_bot.last_text(DR).startswith("This program has no track dual.")

    await track_bot.say(DR, "/track p-mh substance_use")  # the alias in any case, as in /trends
    assert track_bot.last_text(DR).startswith("P-mh is now on the track substance_use.")
    async with track_bot.ctx.sessionmaker() as s:
        mh = await s.get(Participant, ids["P-mh"])
        assert mh is not None and mh.track == "substance_use"
        audit = [(a.action, a.participant_id, a.allowed) for a in (await s.scalars(
            select(AuditEntry).where(AuditEntry.action.like("%track%")).order_by(AuditEntry.id))).all()]
    assert audit == [("view:track", ids["P-mh"], True), ("refused:/track", ids["P-mh"], False),
                     ("refused:/track", None, False), ("track:substance_use", ids["P-mh"], True)]

    # Their reads now follow the substance-use track. They had the general week-1 reads already
    # (in /learn): today's is the first substance-use one, the same as P-su's after the same reads.
    library = content_library(track_bot.ctx)
    general = [sn.id for sn in library.snippets("en", up_to_week=1) if not sn.meta.tracks][:4]
    async with track_bot.ctx.sessionmaker() as s:
        for pid in ids.values():
            for item_id in general:
                await record_delivery(s, track_bot.ctx, pid, item_id, DeliveredVia.LEARN)
        await s.commit()
    first_su = pick_snippet(library, "en", "substance_use", 1, general)
    assert first_su is not None and first_su.meta.tracks == ("substance_use",)
    await track_bot.tick(DRIP_AT - timedelta(hours=2))
    await track_bot.tick(DRIP_AT)
    assert [_title(track_bot, t) for t in _reads(track_bot, MH)] == [first_su.id]
    assert [_title(track_bot, t) for t in _reads(track_bot, SU)] == [first_su.id]

    # "none": every snippet again (the participant is never told about any of it).
    await track_bot.say(DR, "/track P-mh none")
    assert track_bot.last_text(DR).startswith("P-mh is now on no track")
    assert not any("track" in t.lower() for t in track_bot.texts(MH))


async def test_track_command_when_the_program_has_no_tracks(inbot: InProcessBot) -> None:
    _with_track_router(inbot.running.dispatcher)
    async with inbot.ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-nt", DR, inbot.clock.now())
        await add_participant(s, "P-nt", dr, SU, inbot.clock.now())
        await s.commit()
    await inbot.say(DR, "/track P-nt substance_use")
    assert inbot.last_text(DR).startswith("This program has no tracks")
    await inbot.say(DR, "/track")
    assert inbot.last_text(DR).startswith("This program has no tracks")


async def test_track_is_not_changed_for_someone_not_enrolled(track_bot: InProcessBot) -> None:
    ids = await _people(track_bot)
    async with track_bot.ctx.sessionmaker() as s:
        await s.execute(update(Participant).where(Participant.id == ids["P-mh"]).values(status="declined"))
        await s.commit()
    await track_bot.say(DR, "/track P-mh substance_use")
    assert "not enrolled in the program now" in track_bot.last_text(DR)
    async with track_bot.ctx.sessionmaker() as s:
        assert (await s.get(Participant, ids["P-mh"])).track == "mental_health"  # type: ignore[union-attr]
