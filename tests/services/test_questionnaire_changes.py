"""Questionnaires in the clinician's views, on SQLite and PostgreSQL: each participant's latest
PHQ-9 and GAD-7 with the change since the previous one in /caseload, the totals over time in
/trends, those completed in the last 24 hours in /digest (each a disclosure), a rise of 5 or more
or the severe band marked, in English and Spanish; totals and bands only, never an item's answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.instrument_models import INSTRUMENT, InstrumentScore
from bot.db.models import Participant, Staff
from bot.services.caseload import (
    QuestionnaireScore,
    QuestionnaireTrend,
    caseload_rows,
    digest_for,
    participant_trends,
)
from bot.services.caseload_text import caseload_messages, digest_messages, trends_messages
from tests.support.inproc import add_participant, add_staff

MONDAY = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # the clock fixture's start is this day, 14:00


def _trend(instrument_id: str, *totals_and_bands: tuple[int, str]) -> QuestionnaireTrend:
    scores = tuple(QuestionnaireScore(date(2026, 3, 2) + timedelta(weeks=i), total, band,
                                      MONDAY + timedelta(weeks=i))
                   for i, (total, band) in enumerate(totals_and_bands))
    return QuestionnaireTrend(instrument_id, scores)


def test_a_rise_of_five_or_the_severe_band_is_marked() -> None:
    first = _trend("phq9", (9, "mild"))
    assert first.change is None and first.previous is None and not first.notable
    four = _trend("phq9", (9, "mild"), (13, "moderate"))
    assert four.change == 4 and not four.meaningful_rise and not four.notable
    five = _trend("gad7", (4, "minimal"), (9, "mild"))
    assert five.change == 5 and five.meaningful_rise and five.notable and not five.severe
    severe_falling = _trend("phq9", (25, "severe"), (21, "severe"))
    assert severe_falling.change == -4 and severe_falling.severe and severe_falling.notable
    # "moderately severe" is not the severe band; an instrument without a known threshold is
    # marked by its severe band only.
    assert not _trend("phq9", (14, "moderate"), (15, "moderately_severe")).notable
    assert not _trend("pcl5", (10, "low"), (40, "high")).notable


async def _score(ctx: AppContext, participant: Participant, instrument_id: str, total: int, band: str,
                 at: datetime) -> None:
    async with ctx.sessionmaker() as s:
        run = FlowRun(participant_id=participant.id, kind=INSTRUMENT, flow_id=instrument_id, locale="en",
                      step=None, status=FlowStatus.FINISHED, started_at=at, finished_at=at, local_date=at.date())
        s.add(run)
        await s.flush()
        s.add(InstrumentScore(participant_id=participant.id, run_id=run.id, instrument_id=instrument_id,
                              version="1", local_date=at.date(), total=total, band=band, completed_at=at))
        await s.commit()


async def test_caseload_trends_and_digest_show_totals_and_changes(ctx: AppContext, clock: ManualClock) -> None:
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", 900_001, clock.now())
        rising = await add_participant(s, "P-105", dr, 5_001, clock.now())
        steady = await add_participant(s, "P-102", dr, 5_002, clock.now())
        await s.commit()
    for week, (phq, phq_band, gad, gad_band) in enumerate([(9, "mild", 10, "moderate"),
                                                           (14, "moderate", 8, "mild"),
                                                           (20, "severe", 8, "mild")]):
        clock.set(MONDAY + timedelta(weeks=week))
        await _score(ctx, rising, "phq9", phq, phq_band, clock.now())
        await _score(ctx, rising, "gad7", gad, gad_band, clock.now() + timedelta(minutes=3))
        if week < 2:  # P-102 answered PHQ-9 twice, with a small drop, and nothing this week
            await _score(ctx, steady, "phq9", 6 - week, "mild", clock.now())
    clock.advance(hours=2)

    async with ctx.sessionmaker() as s:
        staff = await s.get(Staff, dr.id)
        assert staff is not None
        rows = await caseload_rows(s, staff, clock.now())
        trends = await participant_trends(s, rising, clock.now())
        digest = await digest_for(s, staff, clock.now())

    assert [r.alias for r in rows] == ["P-105", "P-102"]  # a marked questionnaire comes first
    phq, gad = rows[0].questionnaires
    assert (phq.instrument_id, phq.latest.total, phq.previous and phq.previous.total, phq.change) == ("phq9", 20, 14, 6)
    assert phq.meaningful_rise and phq.severe and (gad.change, gad.notable) == (0, False)
    assert [s.total for s in trends.questionnaires[0].scores] == [9, 14, 20]  # oldest first
    assert [q.alias for q in digest.questionnaires] == ["P-105", "P-105"]  # P-102 had none in 24 hours
    assert digest.participant_ids == {rising.id}

    (caseload,) = caseload_messages(ctx, rows, "en")
    p105, p102 = caseload.split("\n\n")[1:3]
    assert p105.startswith("⚠️ <b>P-105</b> · active")
    assert ("PHQ-9 20 severe, Mon, Mar 16 (▲6 since Mon, Mar 9) · ⚠️ a rise of 5 points or more"
            " · ⚠️ severe range") in p105
    assert "GAD-7 8 mild, Mon, Mar 16 (no change since Mon, Mar 9)" in p105
    assert p102.startswith("• <b>P-102</b>") and "PHQ-9 5 mild, Mon, Mar 9 (▼1 since Mon, Mar 2)" in p102
    assert "⚠️" not in p102

    trends_text = "\n\n".join(trends_messages(ctx, trends, "en"))
    assert "PHQ-9: 9 (Mon, Mar 2) → 14 (Mon, Mar 9) → 20 (Mon, Mar 16)" in trends_text
    assert "GAD-7: 10 (Mon, Mar 2) → 8 (Mon, Mar 9) → 8 (Mon, Mar 16)" in trends_text

    digest_text = "\n\n".join(digest_messages(ctx, digest, "en"))
    assert "Questionnaires completed" in digest_text
    assert "⚠️ P-105 – PHQ-9 20 severe, Mon, Mar 16 (▲6 since Mon, Mar 9)" in digest_text
    assert "• P-105 – GAD-7 8 mild" in digest_text

    (spanish,) = caseload_messages(ctx, rows, "es")
    assert "PHQ-9 20 grave" in spanish and "▲6 desde el" in spanish and "subió 5 puntos o más" in spanish
    assert "rango grave" in spanish and "sin cambio desde el" in spanish
    assert "Cuestionarios" in "\n".join(trends_messages(ctx, trends, "es"))
    assert "Cuestionarios respondidos" in "\n".join(digest_messages(ctx, digest, "es"))


async def test_a_first_questionnaire_has_no_change(ctx: AppContext, clock: ManualClock) -> None:
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", 900_001, clock.now())
        p = await add_participant(s, "P-101", dr, 5_001, clock.now())
        await s.commit()
    await _score(ctx, p, "phq9", 12, "moderate", clock.now())
    async with ctx.sessionmaker() as s:
        staff = await s.get(Staff, dr.id)
        assert staff is not None
        (row,) = await caseload_rows(s, staff, clock.now())
    (text,) = caseload_messages(ctx, [row], "en")
    assert "PHQ-9 12 moderate, Mon, Mar 2 (the first one)" in text and "⚠️" not in text
