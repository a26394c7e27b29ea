"""The trend chart on SQLite and PostgreSQL: the participant's own days (time zone boundaries),
missed check-ins, questionnaire totals with their bands, alerts, sessions and their marks; the
PNG decodes, is 1080 px wide, and the point counts written into it match the data; a participant
with nothing yet gets a picture and a caption that say so, in English and Spanish."""

from __future__ import annotations

import io
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.calendar_models import (
    Attendance,
    AttendanceStatus,
    ProgramSession,
    SessionAttendee,
    SessionOccurrence,
    SessionPresence,
)
from bot.db.checkin_models import CHECKIN, CheckinAnswer, FlowRun, FlowStatus
from bot.db.instrument_models import INSTRUMENT, InstrumentScore
from bot.db.models import ActionStatus, Escalation, EscalationStatus, Participant, ScheduledAction
from bot.services.charts import trend_chart
from bot.services.charts.data import SessionOutcome
from bot.services.charts.render import POINTS_KEY, WIDTH_PX, point_counts_of
from bot.services.charts.service import trend_data
from tests.support.inproc import add_participant, add_staff

# 18:00 UTC on Sunday 2026-03-29 is 13:00 in Chicago (CDT, UTC-5 since 2026-03-08): the 30 days are
# Feb 28 .. Mar 29 in Chicago, and they cross the spring-forward change.
NOW = datetime(2026, 3, 29, 18, 0, tzinfo=UTC)
FIRST = date(2026, 2, 28)
TODAY = date(2026, 3, 29)


async def _checkin(s: AsyncSession, p: Participant, day: date, **answers: float) -> None:
    at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
    run = FlowRun(participant_id=p.id, kind=CHECKIN, flow_id="daily", locale="en", step=None,
                  status=FlowStatus.FINISHED, started_at=at, finished_at=at, local_date=day)
    s.add(run)
    await s.flush()
    for question, value in answers.items():
        s.add(CheckinAnswer(participant_id=p.id, run_id=run.id, local_date=day, question_id=question,
                            value_number=value, answered_at=at))


def _row(p: Participant, day: date, status: str, sent_at: datetime | None) -> ScheduledAction:
    at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
    return ScheduledAction(kind=CHECKIN, key=f"checkin:{p.id}:{day}", due_at=at, intended_at=at, status=status,
                           participant_id=p.id, payload={"date": day.isoformat()}, sent_at=sent_at, created_at=at)


async def _score(s: AsyncSession, p: Participant, instrument_id: str, total: int, band: str, at: datetime,
                 day: date) -> None:
    run = FlowRun(participant_id=p.id, kind=INSTRUMENT, flow_id=instrument_id, locale="en", step=None,
                  status=FlowStatus.FINISHED, started_at=at, finished_at=at, local_date=day)
    s.add(run)
    await s.flush()
    s.add(InstrumentScore(participant_id=p.id, run_id=run.id, instrument_id=instrument_id, version="1",
                          local_date=day, total=total, band=band, completed_at=at))


def _alert(p: Participant, at: datetime, level: int, status: str) -> Escalation:
    return Escalation(participant_id=p.id, level=level, status=status, message_received_at=at, created_at=at)


async def _sessions(s: AsyncSession, p: Participant, starts: list[datetime]) -> list[SessionOccurrence]:
    ps = ProgramSession(uid="chart-group", title="Group", kind="group", first_start=starts[0], duration_minutes=60,
                        timezone="America/Chicago", rrule=None, exdates=[], video_link="https://example.org/v",
                        created_at=starts[0], updated_at=starts[0])
    s.add(ps)
    await s.flush()
    s.add(SessionAttendee(session_id=ps.id, participant_id=p.id))
    occurrences = [SessionOccurrence(session_id=ps.id, original_start=at, start_at=at, duration_minutes=60,
                                     created_at=at) for at in starts]
    s.add_all(occurrences)
    await s.flush()
    return occurrences


async def test_the_chart_data_follows_the_participants_days(ctx: AppContext, clock: ManualClock) -> None:
    clock.set(NOW)
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-chart", 910_001, NOW)
        p = await add_participant(s, "P-701", dr, 7_001, NOW - timedelta(days=60), timezone="America/Chicago")
        await _checkin(s, p, FIRST - timedelta(days=1), mood=1, craving=9, sleep_hours=3)  # before the window
        await _checkin(s, p, FIRST, mood=4, craving=6, sleep_hours=5.5)
        await _checkin(s, p, date(2026, 3, 8), mood=5)  # the spring-forward day; craving and sleep skipped
        await _checkin(s, p, TODAY, mood=7, craving=2, sleep_hours=8)
        s.add_all([
            _row(p, date(2026, 3, 3), ActionStatus.SENT, datetime(2026, 3, 3, 15, 0, tzinfo=UTC)),  # missed
            _row(p, date(2026, 3, 4), ActionStatus.SENT, datetime(2026, 3, 4, 15, 0, tzinfo=UTC)),  # missed
            _row(p, date(2026, 3, 5), ActionStatus.ANSWERED, datetime(2026, 3, 5, 15, 0, tzinfo=UTC)),
            _row(p, FIRST - timedelta(days=2), ActionStatus.SENT, datetime(2026, 2, 26, 15, 0, tzinfo=UTC)),  # before
            _row(p, TODAY, ActionStatus.SENT, NOW - timedelta(hours=2)),  # may still be answered: not missed
        ])
        # Questionnaires: one before the window, two in it (the local day is kept as stored).
        await _score(s, p, "phq9", 18, "moderately_severe", datetime(2026, 2, 23, 16, tzinfo=UTC), date(2026, 2, 23))
        await _score(s, p, "phq9", 14, "moderate", datetime(2026, 3, 2, 16, tzinfo=UTC), date(2026, 3, 2))
        await _score(s, p, "gad7", 6, "mild", datetime(2026, 3, 2, 16, 5, tzinfo=UTC), date(2026, 3, 2))
        await _score(s, p, "phq9", 9, "mild", datetime(2026, 3, 23, 16, tzinfo=UTC), date(2026, 3, 23))
        # Alerts: 05:30 UTC on Feb 28 is Feb 27 23:30 in Chicago (outside); 06:30 UTC is Feb 28 00:30.
        s.add_all([
            _alert(p, datetime(2026, 2, 28, 5, 30, tzinfo=UTC), 2, EscalationStatus.RESOLVED),
            _alert(p, datetime(2026, 2, 28, 6, 30, tzinfo=UTC), 2, EscalationStatus.RESOLVED),
            _alert(p, datetime(2026, 3, 20, 3, 0, tzinfo=UTC), 3, EscalationStatus.OPEN),  # Mar 19, 22:00 local
        ])
        # Sessions: marked present, marked absent, said can't attend, not marked, one still to come.
        starts = [datetime(2026, 3, d, 23, 0, tzinfo=UTC) for d in (2, 9, 16, 23)] + [NOW + timedelta(hours=3)]
        occ = await _sessions(s, p, starts)
        s.add_all([
            SessionPresence(occurrence_id=occ[0].id, participant_id=p.id, present=True, marked_at=starts[0]),
            SessionPresence(occurrence_id=occ[1].id, participant_id=p.id, present=False, marked_at=starts[1]),
            Attendance(participant_id=p.id, occurrence_id=occ[2].id, status=AttendanceStatus.CANT_ATTEND,
                       responded_at=starts[0], updated_at=starts[0]),
            Attendance(participant_id=p.id, occurrence_id=occ[3].id, status=AttendanceStatus.ATTENDING,
                       responded_at=starts[0], updated_at=starts[0]),  # an intention, not a record
        ])
        await s.commit()

    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, p.id)
        assert participant is not None
        data = await trend_data(ctx, s, participant, NOW)

    assert (data.first, data.last, len(data.days)) == (FIRST, TODAY, 30)
    by_day = {d.day: d for d in data.days}
    assert (by_day[FIRST].mood, by_day[FIRST].craving, by_day[FIRST].sleep) == (4.0, 6.0, 5.5)
    spring = by_day[date(2026, 3, 8)]
    assert (spring.mood, spring.craving, spring.sleep, spring.answered) == (5.0, None, None, True)
    assert [d.day for d in data.days if d.missed] == [date(2026, 3, 3), date(2026, 3, 4)]
    phq, gad = data.questionnaires
    assert [(p.day, p.total) for p in phq.points] == [(date(2026, 3, 2), 14), (date(2026, 3, 23), 9)]
    assert phq.latest.band == "mild" and phq.top == 27 and phq.bands[0].id == "minimal"
    assert (gad.instrument_id, gad.top, len(gad.points)) == ("gad7", 21, 1)
    assert [(a.day, a.level, a.open) for a in data.alerts] == [(FIRST, 2, False), (date(2026, 3, 19), 3, True)]
    assert [s.outcome for s in data.sessions] == [SessionOutcome.ATTENDED, SessionOutcome.ABSENT,
                                                  SessionOutcome.CANT_ATTEND, SessionOutcome.NOT_MARKED]
    assert data.point_counts() == {"days": 30, "mood": 3, "craving": 2, "sleep": 2, "missed": 2, "alerts": 2,
                                   "sessions": 4, "attended": 1, "phq9": 2, "gad7": 1}

    async with ctx.sessionmaker() as s:
        participant = await s.get(Participant, p.id)
        assert participant is not None
        png, caption = await trend_chart(ctx, s, participant, NOW, "en")
        own_png, own_caption = await trend_chart(ctx, s, participant, NOW, "es", own=True)

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.format == "PNG" and image.width == WIDTH_PX and image.height > WIDTH_PX
        assert POINTS_KEY in image.text  # type: ignore[attr-defined]
    assert point_counts_of(png) == data.point_counts() == point_counts_of(own_png)
    assert caption.splitlines() == [
        "Chart of P-701, Feb 28 – Mar 29 (30 days).",
        "Mood: 3 check-ins, 2 missed; last 7, average 5.3.",
        "Craving: last 2, average 4.",
        "Sleep: 2 nights, average 6.8 hours.",
        "PHQ-9: 2 (last 9, mild).",
        "GAD-7: 1 (last 6, mild).",
        "Alerts: 2 (imminent 1, urgent 1).",
        "Sessions: 4 held; attended 1, absent 1, said can't attend 1, not marked 1.",
    ]
    # The participant's own chart, in Spanish: their words, no alert levels.
    assert own_caption.startswith("Tu gráfico, 28 feb – 29 mar (30 días).\nÁnimo: 3 chequeos, 2 sin responder")
    assert "Veces que se avisó a tu equipo de atención: 2." in own_caption and "inminente" not in own_caption
    assert "PHQ-9: 2 (último 9, leve)." in own_caption


async def test_a_participant_with_nothing_yet_gets_a_clear_picture(ctx: AppContext, clock: ManualClock) -> None:
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-empty", 910_002, clock.now())
        p = await add_participant(s, "P-702", dr, 7_002, clock.now())
        await s.commit()
        png, caption = await trend_chart(ctx, s, p, clock.now(), "en")
        own_png, own_caption = await trend_chart(ctx, s, p, clock.now(), "es", own=True)
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.size[0] == WIDTH_PX
    assert point_counts_of(png)["mood"] == 0 and point_counts_of(own_png)["days"] == 30
    assert caption == "Chart of P-702: no check-ins yet in the last 30 days."
    assert own_caption.startswith("Todavía no hay chequeos en los últimos 30 días.")


async def test_an_alias_with_markup_is_escaped_in_the_caption(ctx: AppContext, clock: ManualClock) -> None:
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-esc", 910_003, clock.now())
        p = await add_participant(s, "P<b>&", dr, 7_003, clock.now())
        await _checkin(s, p, clock.now().date(), mood=3)
        await s.commit()
        png, caption = await trend_chart(ctx, s, p, clock.now(), "en")
    assert caption.startswith("Chart of P&lt;b&gt;&amp;,") and point_counts_of(png)["mood"] == 1


def test_every_chart_text_is_in_english_and_spanish(ctx: AppContext) -> None:
    english = {k for k in ctx.texts.by_locale["en"] if k.startswith("chart.")}
    spanish = {k for k in ctx.texts.by_locale["es"] if k.startswith("chart.")}
    assert english and english == spanish
    assert not [p for p in ctx.texts.check() if ".chart" in p or " chart." in p]


async def test_the_chart_is_drawn_off_the_event_loop(ctx: AppContext, clock: ManualClock,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib works in a worker thread, so a crisis reply never waits for a chart."""
    from bot.services.charts import service

    threads: list[int] = []
    draw = service.render_trend

    def recording(*args: Any) -> bytes:
        threads.append(threading.get_ident())
        return draw(*args)

    monkeypatch.setattr(service, "render_trend", recording)
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-thread", 910_004, clock.now())
        p = await add_participant(s, "P-704", dr, 7_004, clock.now())
        await _checkin(s, p, clock.now().date(), mood=6)
        await s.commit()
        png, _ = await trend_chart(ctx, s, p, clock.now(), "en")
    assert threads and threads[0] != threading.get_ident() and point_counts_of(png)["mood"] == 1
