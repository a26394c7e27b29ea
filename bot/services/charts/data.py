"""What the trend chart shows, gathered from the database: one participant's last 30 local days.

Days are the participant's own (their time zone): a check-in answered at 23:30 in Chicago belongs
to that Chicago day, whatever UTC says. Each series is one indexed query (answers by participant
and date, rows and scores by participant), so a clinician with 200 participants never waits on a
chart. Numbers and ids only: no free text, no single questionnaire items (totals and bands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.calendar_models import (
    Attendance,
    AttendanceStatus,
    ProgramSession,
    SessionOccurrence,
    SessionPresence,
)
from bot.db.checkin_models import CHECKIN, CheckinAnswer
from bot.db.instrument_models import InstrumentScore
from bot.db.models import UNRESOLVED, ActionStatus, Escalation, Participant, ScheduledAction
from bot.services.calendar import occurrences as cal
from bot.services.local_time import local_date

CHART_DAYS = 30
# The check-in questions the chart draws (their ids in content/<locale>/checkins/daily.toml).
MOOD, CRAVING, SLEEP = "mood", "craving", "sleep_hours"
SCALE_TOP = 10.0  # mood and craving are 0-10
# PHQ-9 before GAD-7 before any other questionnaire an author adds (then by id).
QUESTIONNAIRE_ORDER = ("phq9", "gad7")


class SessionOutcome(StrEnum):
    """What the data says about one session the participant was expected at, once it ended."""

    ATTENDED = "attended"  # the facilitator (or a clinician) marked them present
    ABSENT = "absent"  # ...marked them not there
    CANT_ATTEND = "cant_attend"  # not marked; the participant had said beforehand they could not come
    NOT_MARKED = "not_marked"  # held; nobody marked who was there


@dataclass(frozen=True)
class ChartDay:
    """One local day: the numbers answered (None: not answered or skipped) and whether the
    day's check-in was sent and left unanswered."""

    day: date
    mood: float | None = None
    craving: float | None = None
    sleep: float | None = None
    answered: bool = False  # at least one check-in answer that day
    missed: bool = False


@dataclass(frozen=True)
class BandRange:
    """A questionnaire band as the content defines it (the words are in ui.toml)."""

    id: str
    low: int
    high: int


@dataclass(frozen=True)
class ScorePoint:
    day: date
    total: int
    band: str


@dataclass(frozen=True)
class QuestionnaireSeries:
    """One questionnaire's totals in the period, oldest first (at least one), with its bands."""

    instrument_id: str
    points: tuple[ScorePoint, ...]
    bands: tuple[BandRange, ...] = ()

    @property
    def latest(self) -> ScorePoint:
        return self.points[-1]

    @property
    def top(self) -> int:
        """The highest possible total (the top band's end), else the highest total seen."""
        return max([b.high for b in self.bands] + [p.total for p in self.points])


@dataclass(frozen=True)
class AlertMark:
    day: date
    level: int  # bot.safety.levels.Level
    open: bool  # no outcome recorded yet


@dataclass(frozen=True)
class SessionMark:
    day: date
    outcome: SessionOutcome


@dataclass(frozen=True)
class TrendData:
    """Everything one chart shows. `days` holds every day of the period, oldest first."""

    alias: str
    timezone: str
    first: date
    last: date
    days: tuple[ChartDay, ...]
    questionnaires: tuple[QuestionnaireSeries, ...] = ()
    alerts: tuple[AlertMark, ...] = ()
    sessions: tuple[SessionMark, ...] = ()

    @property
    def checkins_answered(self) -> int:
        return sum(1 for d in self.days if d.answered)

    @property
    def checkins_missed(self) -> int:
        return sum(1 for d in self.days if d.missed)

    def sessions_with(self, outcome: SessionOutcome) -> int:
        return sum(1 for s in self.sessions if s.outcome == outcome)

    @property
    def empty(self) -> bool:
        """Nothing to draw: no answers, no misses, no questionnaires, alerts or sessions."""
        return not (self.checkins_answered or self.checkins_missed or self.questionnaires or self.alerts
                    or self.sessions)

    def point_counts(self) -> dict[str, int]:
        """How many points each series draws: written into the PNG's metadata, so a test can
        check the picture it decoded against the data."""
        counts = {
            "days": len(self.days),
            "mood": sum(1 for d in self.days if d.mood is not None),
            "craving": sum(1 for d in self.days if d.craving is not None),
            "sleep": sum(1 for d in self.days if d.sleep is not None),
            "missed": self.checkins_missed,
            "alerts": len(self.alerts),
            "sessions": len(self.sessions),
            "attended": self.sessions_with(SessionOutcome.ATTENDED),
        }
        for q in self.questionnaires:
            counts[q.instrument_id] = len(q.points)
        return counts


def _questionnaire_rank(instrument_id: str) -> tuple[int, str]:
    order = QUESTIONNAIRE_ORDER
    return (order.index(instrument_id) if instrument_id in order else len(order), instrument_id)


async def gather_trend(session: AsyncSession, participant: Participant, now: datetime, *,
                       days: int = CHART_DAYS, expire_hours: float = 12.0,
                       bands_of: Callable[[str], tuple[BandRange, ...]] = lambda _: ()) -> TrendData:
    """The participant's last `days` local days (today included) as of `now`.

    `expire_hours` ([checkin] expire_hours): a check-in sent less than this long ago may still be
    answered, so it is not a miss yet. `bands_of` gives a questionnaire's bands from the content.
    """
    zone = ZoneInfo(participant.timezone)
    today = local_date(now, zone)
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), zone)

    # Check-in answers: ix_checkin_answers_participant_question_date.
    answered: set[date] = set()
    numbers: dict[tuple[date, str], float] = {}
    for day, question, number in (await session.execute(
            select(CheckinAnswer.local_date, CheckinAnswer.question_id, CheckinAnswer.value_number)
            .where(CheckinAnswer.participant_id == participant.id, CheckinAnswer.local_date >= first,
                   CheckinAnswer.local_date <= today)
            .order_by(CheckinAnswer.id))).all():
        answered.add(day)
        if number is not None and question in (MOOD, CRAVING, SLEEP):
            numbers[(day, question)] = float(number)

    # Missed check-ins: sent, not answered, and past the time they could still be answered.
    still_open = now - timedelta(hours=expire_hours)
    missed: set[date] = set()
    for intended_at, payload, sent_at in (await session.execute(
            select(ScheduledAction.intended_at, ScheduledAction.payload, ScheduledAction.sent_at)
            .where(ScheduledAction.participant_id == participant.id, ScheduledAction.kind == CHECKIN,
                   ScheduledAction.status == ActionStatus.SENT, ScheduledAction.intended_at >= since,
                   ScheduledAction.intended_at <= now))).all():
        if sent_at is not None and sent_at > still_open:
            continue
        try:
            day = date.fromisoformat(str((payload or {}).get("date")))
        except ValueError:
            day = local_date(intended_at, zone)
        if first <= day <= today and day not in answered:
            missed.add(day)

    chart_days = tuple(
        ChartDay(day, mood=numbers.get((day, MOOD)), craving=numbers.get((day, CRAVING)),
                 sleep=numbers.get((day, SLEEP)), answered=day in answered, missed=day in missed)
        for day in (first + timedelta(days=offset) for offset in range(days)))

    # Questionnaire totals: ix_instrument_scores_participant_instrument_completed.
    scores: dict[str, list[ScorePoint]] = {}
    for instrument_id, scored_on, total, band, completed_at in (await session.execute(
            select(InstrumentScore.instrument_id, InstrumentScore.local_date, InstrumentScore.total,
                   InstrumentScore.band, InstrumentScore.completed_at)
            .where(InstrumentScore.participant_id == participant.id, InstrumentScore.completed_at >= since,
                   InstrumentScore.completed_at <= now)
            .order_by(InstrumentScore.completed_at, InstrumentScore.id))).all():
        scores.setdefault(instrument_id, []).append(
            ScorePoint(scored_on or local_date(completed_at, zone), int(total), band))
    questionnaires = tuple(QuestionnaireSeries(i, tuple(points), bands_of(i))
                           for i, points in sorted(scores.items(), key=lambda kv: _questionnaire_rank(kv[0])))

    # Alerts, by the day the flagged message (or answer) came in.
    alerts = tuple(
        AlertMark(local_date(at, zone), int(level), status in UNRESOLVED)
        for at, level, status in (await session.execute(
            select(Escalation.message_received_at, Escalation.level, Escalation.status)
            .where(Escalation.participant_id == participant.id, Escalation.message_received_at >= since,
                   Escalation.message_received_at <= now)
            .order_by(Escalation.message_received_at))).all())

    sessions = await _sessions_held(session, participant.id, since, now, zone)
    return TrendData(participant.alias, participant.timezone, first, today, chart_days, questionnaires,
                     alerts, sessions)


async def _sessions_held(session: AsyncSession, participant_id: int, since: datetime, now: datetime,
                         zone: ZoneInfo) -> tuple[SessionMark, ...]:
    """The participant's sessions that ended in the period (not cancelled), with what is known
    about their attendance: the facilitator's mark (`SessionPresence`) when there is one, else
    what the participant said beforehand (`Attendance`: only "can't attend" says anything)."""
    mine = await cal.sessions_of(session, participant_id)
    if not mine:
        return ()
    rows = (await session.execute(
        select(SessionOccurrence.start_at, SessionOccurrence.duration_minutes, SessionPresence.present,
               Attendance.status)
        .join(ProgramSession, ProgramSession.id == SessionOccurrence.session_id)
        .outerjoin(SessionPresence, (SessionPresence.occurrence_id == SessionOccurrence.id)
                   & (SessionPresence.participant_id == participant_id))
        .outerjoin(Attendance, (Attendance.occurrence_id == SessionOccurrence.id)
                   & (Attendance.participant_id == participant_id))
        .where(SessionOccurrence.session_id.in_(sorted(mine)), SessionOccurrence.start_at >= since,
               SessionOccurrence.start_at <= now, SessionOccurrence.cancelled_at.is_(None),
               ProgramSession.cancelled_at.is_(None))
        .order_by(SessionOccurrence.start_at))).all()
    return tuple(SessionMark(local_date(start, zone), _outcome(present, said))
                 for start, minutes, present, said in rows if start + timedelta(minutes=minutes) <= now)


def _outcome(present: bool | None, said: str | None) -> SessionOutcome:
    if present is not None:
        return SessionOutcome.ATTENDED if present else SessionOutcome.ABSENT
    return SessionOutcome.CANT_ATTEND if said == AttendanceStatus.CANT_ATTEND else SessionOutcome.NOT_MARKED
