"""What a brief says about one participant, as data: read from the database, no words yet.

The period is "since the last session": from the previous occurrence of the same session series
(or a week, for the first one) to now. Check-in averages are compared with the period of the same
length before it, so "mood 4.2 (was 6.0)" reads as a change a facilitator can open with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.calendar_models import Attendance, AttendanceStatus, SessionOccurrence
from bot.db.checkin_models import CHECKIN, CheckinAnswer
from bot.db.content_models import ExerciseAnswer
from bot.db.models import UNRESOLVED, ActionStatus, Escalation, Participant, ScheduledAction
from bot.services.caseload import QuestionnaireTrend, questionnaire_trends
from bot.services.local_time import local_date

FIRST_PERIOD = timedelta(days=7)  # the first session of a series looks back a week
LONGEST_PERIOD = timedelta(days=14)  # after a long break too: a month of averages hides this week
SHARED_KEY = "save_for_session"  # an exercise's "save it for my next session?" question (content)
MEASURES = ("mood", "craving", "sleep_hours")


@dataclass(frozen=True)
class Measure:
    name: str  # mood | craving | sleep_hours
    average: float | None  # in the period
    before: float | None  # in the period of the same length before it


@dataclass(frozen=True)
class AlertFact:
    level: int
    status: str
    outcome: str | None
    received_at: datetime


@dataclass(frozen=True)
class SharedRecord:
    """An exercise the participant saved "for my next session", with what they typed in it."""

    exercise_id: str
    answered_at: datetime
    answers: tuple[tuple[str, str], ...]  # (step key, their words), in the order given


@dataclass(frozen=True)
class ParticipantFacts:
    participant_id: int
    alias: str
    since: datetime
    until: datetime
    checkins_sent: int
    checkins_answered: int
    measures: tuple[Measure, ...]
    questionnaires: tuple[QuestionnaireTrend, ...]
    alerts: tuple[AlertFact, ...]  # flagged in the period, or still open
    cant_attend: str | None  # this session: "" (no reason given) or the reason code; None: nothing said
    shared: tuple[SharedRecord, ...]


async def period_start(session: AsyncSession, occ: SessionOccurrence) -> datetime:
    """The start of the previous occurrence of this series that was not cancelled (up to two weeks
    back), else a week before this one."""
    previous = await session.scalar(
        select(func.max(SessionOccurrence.start_at))
        .where(SessionOccurrence.session_id == occ.session_id, SessionOccurrence.start_at < occ.start_at,
               SessionOccurrence.cancelled_at.is_(None)))
    if previous is None or occ.start_at - previous > LONGEST_PERIOD:
        return occ.start_at - FIRST_PERIOD
    return previous


async def participant_facts(session: AsyncSession, participant: Participant, occ: SessionOccurrence,
                            since: datetime, until: datetime) -> ParticipantFacts:
    zone = ZoneInfo(participant.timezone)
    first, last = local_date(since, zone), local_date(until, zone)
    span = last - first + timedelta(days=1)
    values: dict[tuple[bool, str], list[float]] = {}
    for day, question, number in (await session.execute(
            select(CheckinAnswer.local_date, CheckinAnswer.question_id, CheckinAnswer.value_number)
            .where(CheckinAnswer.participant_id == participant.id, CheckinAnswer.question_id.in_(MEASURES),
                   CheckinAnswer.local_date >= first - span, CheckinAnswer.local_date <= last,
                   CheckinAnswer.value_number.is_not(None)))).all():
        if number is not None:
            values.setdefault((day >= first, question), []).append(float(number))
    averages = {key: sum(numbers) / len(numbers) for key, numbers in values.items()}
    measures = tuple(Measure(name, averages.get((True, name)), averages.get((False, name))) for name in MEASURES)
    statuses = (await session.scalars(
        select(ScheduledAction.status)
        .where(ScheduledAction.kind == CHECKIN, ScheduledAction.participant_id == participant.id,
               ScheduledAction.intended_at >= since, ScheduledAction.intended_at <= until,
               ScheduledAction.status.in_([ActionStatus.SENT, ActionStatus.ANSWERED])))).all()
    alerts = tuple(AlertFact(int(level), status, outcome, at) for level, status, outcome, at in (await session.execute(
        select(Escalation.level, Escalation.status, Escalation.outcome, Escalation.message_received_at)
        .where(Escalation.participant_id == participant.id,
               or_(Escalation.message_received_at >= since, Escalation.status.in_(UNRESOLVED)))
        .order_by(Escalation.message_received_at))).all())
    answer = await session.scalar(select(Attendance).where(Attendance.participant_id == participant.id,
                                                           Attendance.occurrence_id == occ.id))
    cant = (answer.reason or "") if answer is not None and answer.status == AttendanceStatus.CANT_ATTEND else None
    questionnaires = (await questionnaire_trends(session, [participant.id])).get(participant.id, ())
    return ParticipantFacts(participant.id, participant.alias, since, until, len(statuses),
                            sum(1 for s in statuses if s == ActionStatus.ANSWERED), measures, questionnaires,
                            alerts, cant, await shared_records(session, participant.id, since, until))


async def shared_records(session: AsyncSession, participant_id: int, since: datetime,
                         until: datetime) -> tuple[SharedRecord, ...]:
    """Exercises saved "for my next session" in the period, with the words typed in them."""
    saved = (await session.execute(
        select(ExerciseAnswer.run_id, ExerciseAnswer.exercise_id, ExerciseAnswer.answered_at)
        .where(ExerciseAnswer.participant_id == participant_id, ExerciseAnswer.key == SHARED_KEY,
               ExerciseAnswer.value_choice == "yes", ExerciseAnswer.answered_at > since,
               ExerciseAnswer.answered_at <= until)
        .order_by(ExerciseAnswer.answered_at))).all()
    if not saved:
        return ()
    typed: dict[int, list[tuple[str, str]]] = {}
    for run_id, key, text in (await session.execute(
            select(ExerciseAnswer.run_id, ExerciseAnswer.key, ExerciseAnswer.value_text)
            .where(ExerciseAnswer.run_id.in_([run for run, _, _ in saved]), ExerciseAnswer.value_text.is_not(None))
            .order_by(ExerciseAnswer.answered_at, ExerciseAnswer.id))).all():
        typed.setdefault(run_id, []).append((key, text or ""))
    return tuple(SharedRecord(exercise, at, tuple(typed.get(run, ()))) for run, exercise, at in saved)
