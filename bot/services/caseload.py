"""What a clinician may see, and what they see: the caseload, a participant's trends, the digest.

A clinician sees their own caseload (assigned or backup); a lead or admin sees the whole program.
The functions here return data only (aliases and numbers, never names or free text); the words
are in bot/services/caseload_text.py, so the same data serves /caseload, /trends, /digest and the
daily digest sent by the scheduler. Questionnaires appear as totals and bands with the change
since the one before; never the answers to single items (PHQ-9 item 9 above 0 is an alert already).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.calendar_models import (
    Attendance,
    AttendanceStatus,
    ProgramSession,
    SessionOccurrence,
    SessionPresence,
)
from bot.db.checkin_models import CHECKIN, CheckinAnswer, FlowRun
from bot.db.instrument_models import InstrumentScore
from bot.db.models import (
    UNRESOLVED,
    ActionStatus,
    Escalation,
    EscalationStatus,
    InboundMessage,
    Participant,
    ParticipantEvent,
    ParticipantStatus,
    ScheduledAction,
    Staff,
)
from bot.safety.levels import Level
from bot.services.calendar import occurrences as cal
from bot.services.checkins.service import missed_in_a_row
from bot.services.local_time import local_date
from bot.services.visibility import visible_participants

TREND_DAYS = 14
DIGEST_HOURS = 24
ABSENCES_SHOWN = 3  # upcoming "can't attend" per participant in the caseload
CONCERN_MESSAGE_DAYS = 7  # messages flagged "concern" count in the caseload for this long
# A rise of this many points since the previous questionnaire is clinically meaningful and is
# marked: the published minimal clinically important difference of PHQ-9 is about 5 points; GAD-7
# has no better-established figure, so the same 5 points is used for it. Other questionnaires an
# author adds have none here, so only their band can mark them.
MEANINGFUL_RISE = {"phq9": 5, "gad7": 5}
SEVERE_BAND = "severe"  # the top band's id in PHQ-9 (20–27) and GAD-7 (15–21): marked whatever the change
QUESTIONNAIRES_IN_TRENDS = 8  # totals per questionnaire in /trends: about two months of weekly ones


async def find_participant(session: AsyncSession, alias: str) -> Participant | None:
    """The participant with this alias, exactly or else ignoring case ("p-101" finds "P-101")."""
    alias = alias.strip()
    if not alias:
        return None
    exact = await session.scalar(select(Participant).where(Participant.alias == alias))
    if exact is not None:
        return exact
    found = (await session.scalars(
        select(Participant).where(func.lower(Participant.alias) == alias.lower()).limit(2))).unique().all()
    return found[0] if len(found) == 1 else None


# --- questionnaires: totals over time and the change since the previous one ------------------------

@dataclass(frozen=True)
class QuestionnaireScore:
    day: date  # the participant's local date of the questionnaire
    total: int
    band: str  # the band's id ("moderate"); its words are in ui.toml
    completed_at: datetime


@dataclass(frozen=True)
class QuestionnaireTrend:
    """One questionnaire of one participant: its latest totals, oldest first (at least one)."""

    instrument_id: str
    scores: tuple[QuestionnaireScore, ...]

    @property
    def latest(self) -> QuestionnaireScore:
        return self.scores[-1]

    @property
    def previous(self) -> QuestionnaireScore | None:
        return self.scores[-2] if len(self.scores) > 1 else None

    @property
    def change(self) -> int | None:
        """Points since the previous one (positive: worse); None for the first one."""
        return None if self.previous is None else self.latest.total - self.previous.total

    @property
    def meaningful_rise(self) -> bool:
        threshold = MEANINGFUL_RISE.get(self.instrument_id)
        return threshold is not None and self.change is not None and self.change >= threshold

    @property
    def severe(self) -> bool:
        return self.latest.band == SEVERE_BAND

    @property
    def notable(self) -> bool:
        """Marked for the clinician: a clinically meaningful rise, or the severe band."""
        return self.meaningful_rise or self.severe


async def questionnaire_trends(session: AsyncSession, participant_ids: list[int], *,
                               per_questionnaire: int = 2) -> dict[int, tuple[QuestionnaireTrend, ...]]:
    """Each participant's latest `per_questionnaire` completed totals of every questionnaire
    (totals and bands only), PHQ-9 before GAD-7 before the rest."""
    if not participant_ids:
        return {}
    rank = func.row_number().over(
        partition_by=(InstrumentScore.participant_id, InstrumentScore.instrument_id),
        order_by=(InstrumentScore.completed_at.desc(), InstrumentScore.id.desc())).label("rank")
    ranked = (
        select(InstrumentScore.participant_id, InstrumentScore.instrument_id, InstrumentScore.local_date,
               InstrumentScore.total, InstrumentScore.band, InstrumentScore.completed_at, rank)
        .where(InstrumentScore.participant_id.in_(participant_ids))
        .subquery()
    )
    found: dict[tuple[int, str], list[QuestionnaireScore]] = defaultdict(list)
    for pid, instrument_id, day, total, band, completed_at, _ in (await session.execute(
            select(ranked).where(ranked.c.rank <= per_questionnaire)
            .order_by(ranked.c.participant_id, ranked.c.instrument_id, ranked.c.rank.desc()))).all():
        found[(pid, instrument_id)].append(
            QuestionnaireScore(day or completed_at.date(), int(total), band, completed_at))
    order = list(MEANINGFUL_RISE)
    by_participant: dict[int, list[QuestionnaireTrend]] = defaultdict(list)
    for (pid, instrument_id), scores in sorted(
            found.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else len(order),
                                           kv[0][1])):
        by_participant[pid].append(QuestionnaireTrend(instrument_id, tuple(scores)))
    return {pid: tuple(trends) for pid, trends in by_participant.items()}


# --- the caseload ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LastCheckin:
    day: date  # the participant's local date
    mood: float | None
    craving: float | None
    level: int  # the highest safety level its answers reached (0 none, 1 concern, ...)
    reasons: tuple[str, ...]  # trigger ids, e.g. "trigger:low_mood"


@dataclass(frozen=True)
class Absence:
    """An upcoming session the participant said they can't attend."""

    start_at: datetime
    timezone: str  # the session host's zone: staff read session times in it


@dataclass(frozen=True)
class CaseloadRow:
    participant_id: int
    alias: str
    status: str
    open_flags: int  # alerts without an outcome (unacknowledged, or acknowledged and not resolved)
    unreachable: bool = False
    last_checkin: LastCheckin | None = None
    missed_in_row: int = 0
    absences: tuple[Absence, ...] = ()
    concern_messages: int = 0  # flagged "concern" in the last CONCERN_MESSAGE_DAYS, without an alert
    awaiting_outcome: int = 0  # of open_flags: acknowledged, no outcome recorded yet
    questionnaires: tuple[QuestionnaireTrend, ...] = ()  # the latest of each, with the one before

    @property
    def concern(self) -> int:
        checkin = self.last_checkin.level if self.last_checkin is not None else 0
        return max(checkin, int(Level.CONCERN) if self.concern_messages else 0)

    @property
    def questionnaire_notable(self) -> bool:
        return any(q.notable for q in self.questionnaires)

    def attention(self) -> tuple[int, int, int, int, int, int, str]:
        """Sort key: open alerts, then concern, then a marked questionnaire, then missed check-ins;
        then blocked; active first."""
        return (-self.open_flags, -self.concern, -int(self.questionnaire_notable), -self.missed_in_row,
                -int(self.unreachable), int(self.status != ParticipantStatus.ACTIVE), self.alias.casefold())


async def _last_checkins(session: AsyncSession, participant_ids: list[int]) -> dict[int, LastCheckin]:
    """The latest check-in with at least one answer (finished, left part-way, or still open)."""
    latest = (
        select(func.max(FlowRun.id))
        .where(FlowRun.kind == CHECKIN, FlowRun.participant_id.in_(participant_ids),
               exists().where(CheckinAnswer.run_id == FlowRun.id))
        .group_by(FlowRun.participant_id)
    )
    runs = (await session.execute(
        select(FlowRun.id, FlowRun.participant_id, FlowRun.local_date, FlowRun.level, FlowRun.reasons,
               FlowRun.started_at)
        .where(FlowRun.id.in_(latest)))).all()
    if not runs:
        return {}
    numbers: dict[tuple[int, str], float | None] = {}
    for run_id, question, value in (await session.execute(
            select(CheckinAnswer.run_id, CheckinAnswer.question_id, CheckinAnswer.value_number)
            .where(CheckinAnswer.run_id.in_([r.id for r in runs]),
                   CheckinAnswer.question_id.in_(["mood", "craving"])))).all():
        numbers[(run_id, question)] = value
    return {
        r.participant_id: LastCheckin(
            day=r.local_date or r.started_at.date(), mood=numbers.get((r.id, "mood")),
            craving=numbers.get((r.id, "craving")), level=int(r.level),
            reasons=tuple(x for x in r.reasons.split(",") if x))
        for r in runs
    }


async def _concern_messages(session: AsyncSession, participant_ids: list[int],
                            since: datetime) -> dict[int, tuple[int, tuple[str, ...]]]:
    """Messages the safety layer flagged below an alert (concern), by participant: how many, and
    their categories. Nobody was paged for them: the caseload and the digest are where they show."""
    found: dict[int, tuple[int, tuple[str, ...]]] = {}
    for participant_id, categories in (await session.execute(
            select(InboundMessage.participant_id, InboundMessage.categories)
            .where(InboundMessage.participant_id.in_(participant_ids), InboundMessage.level >= Level.CONCERN,
                   InboundMessage.escalation_id.is_(None), InboundMessage.received_at >= since)
            .order_by(InboundMessage.id))).all():
        count, known = found.get(participant_id, (0, ()))
        merged = tuple(dict.fromkeys(known + tuple(c for c in (categories or "").split(",") if c)))
        found[participant_id] = (count + 1, merged)
    return found


async def _upcoming_absences(session: AsyncSession, participant_ids: list[int],
                             now: datetime) -> dict[int, list[Absence]]:
    rows = (await session.execute(
        select(Attendance.participant_id, SessionOccurrence.start_at, ProgramSession.timezone)
        .join(SessionOccurrence, SessionOccurrence.id == Attendance.occurrence_id)
        .join(ProgramSession, ProgramSession.id == SessionOccurrence.session_id)
        .where(Attendance.participant_id.in_(participant_ids), Attendance.status == AttendanceStatus.CANT_ATTEND,
               SessionOccurrence.start_at > now, SessionOccurrence.cancelled_at.is_(None),
               ProgramSession.cancelled_at.is_(None))
        .order_by(SessionOccurrence.start_at))).all()
    found: dict[int, list[Absence]] = defaultdict(list)
    for participant_id, start_at, timezone in rows:
        found[participant_id].append(Absence(start_at, timezone))
    return found


async def caseload_rows(session: AsyncSession, staff: Staff, now: datetime, *,
                        expire_hours: float = 12.0) -> list[CaseloadRow]:
    """Every participant this staff member may see, those needing attention first.

    `expire_hours` ([checkin] expire_hours): a check-in sent less than this long ago may still be
    answered, so it is not counted as missed yet.
    """
    # An alert counts until its outcome is recorded: acknowledged is not the end of it.
    open_flags = (
        select(Escalation.participant_id, func.count().label("n"),
               func.sum(case((Escalation.status == EscalationStatus.ACKNOWLEDGED, 1), else_=0)).label("acked"))
        .where(Escalation.status.in_(UNRESOLVED))
        .group_by(Escalation.participant_id)
        .subquery()
    )
    people = (await session.execute(
        select(Participant.id, Participant.alias, Participant.status, Participant.unreachable_at,
               func.coalesce(open_flags.c.n, 0), func.coalesce(open_flags.c.acked, 0))
        .outerjoin(open_flags, open_flags.c.participant_id == Participant.id)
        .where(visible_participants(staff))
    )).all()
    ids = [p[0] for p in people]
    if not ids:
        return []
    last = await _last_checkins(session, ids)
    missed = await missed_in_a_row(session, ids, now, open_after=now - timedelta(hours=expire_hours))
    absences = await _upcoming_absences(session, ids, now)
    messages = await _concern_messages(session, ids, now - timedelta(days=CONCERN_MESSAGE_DAYS))
    questionnaires = await questionnaire_trends(session, ids)
    rows = [
        CaseloadRow(pid, alias, status, int(n), unreachable_at is not None, last.get(pid),
                    missed.get(pid, (0, ""))[0], tuple(absences.get(pid, [])[:ABSENCES_SHOWN]),
                    messages.get(pid, (0, ()))[0], int(acked), questionnaires.get(pid, ()))
        for pid, alias, status, unreachable_at, n, acked in people
    ]
    return sorted(rows, key=CaseloadRow.attention)


# --- trends of one participant -----------------------------------------------------------------------

@dataclass(frozen=True)
class TrendDay:
    day: date
    mood: float | None = None
    craving: float | None = None
    sleep: float | None = None
    medication: str | None = None  # yes | no | not_prescribed
    level: int = 0
    answered: bool = False  # at least one answer that day


@dataclass(frozen=True)
class Trends:
    alias: str
    days: tuple[TrendDay, ...]  # oldest first
    checkins_answered: int
    checkins_missed: int  # sent and not answered (still open ones are not counted)
    sessions_held: int  # past, not cancelled sessions the participant was expected at
    sessions_cant_attend: int  # ...of which they said they can't attend
    alerts: int
    alerts_open: int
    questionnaires: tuple[QuestionnaireTrend, ...] = ()  # totals over a longer span than the days
    sessions_attended: int = 0  # ...of which the facilitator marked them as there
    sessions_missed: int = 0  # ...and as not there

    @property
    def response_rate(self) -> float | None:
        total = self.checkins_answered + self.checkins_missed
        return self.checkins_answered / total if total else None


async def participant_trends(session: AsyncSession, participant: Participant, now: datetime, *,
                             days: int = TREND_DAYS, expire_hours: float = 12.0) -> Trends:
    """The last `days` local days of one participant: answers per day, check-in response,
    sessions, alerts."""
    zone = ZoneInfo(participant.timezone)
    today = local_date(now, zone)
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), zone)
    answered_days: set[date] = set()
    numbers: dict[tuple[date, str], float] = {}
    choices: dict[tuple[date, str], str] = {}
    for day, question, number, choice in (await session.execute(
            select(CheckinAnswer.local_date, CheckinAnswer.question_id, CheckinAnswer.value_number,
                   CheckinAnswer.value_choice)
            .where(CheckinAnswer.participant_id == participant.id, CheckinAnswer.local_date >= first,
                   CheckinAnswer.local_date <= today)
            .order_by(CheckinAnswer.id))).all():
        answered_days.add(day)
        if number is not None:
            numbers[(day, question)] = float(number)
        if choice is not None:
            choices[(day, question)] = choice
    levels = dict((await session.execute(
        select(FlowRun.local_date, func.max(FlowRun.level))
        .where(FlowRun.participant_id == participant.id, FlowRun.kind == CHECKIN, FlowRun.local_date >= first)
        .group_by(FlowRun.local_date))).all())
    trend_days = tuple(
        TrendDay(day, mood=numbers.get((day, "mood")), craving=numbers.get((day, "craving")),
                 sleep=numbers.get((day, "sleep_hours")), medication=choices.get((day, "medication")),
                 level=int(levels.get(day) or 0), answered=day in answered_days)
        for day in (first + timedelta(days=offset) for offset in range(days)))
    statuses = (await session.execute(
        select(ScheduledAction.status, ScheduledAction.sent_at)
        .where(ScheduledAction.kind == CHECKIN, ScheduledAction.participant_id == participant.id,
               ScheduledAction.intended_at >= since, ScheduledAction.intended_at <= now,
               ScheduledAction.status.in_([ActionStatus.SENT, ActionStatus.ANSWERED])))).all()
    still_open = now - timedelta(hours=expire_hours)
    answered = sum(1 for status, _ in statuses if status == ActionStatus.ANSWERED)
    missed = sum(1 for status, sent_at in statuses
                 if status == ActionStatus.SENT and (sent_at is None or sent_at <= still_open))
    held, cant, attended, missed_sessions = await _sessions_between(session, participant.id, since, now)
    alerts = (await session.execute(
        select(Escalation.status).where(Escalation.participant_id == participant.id,
                                        Escalation.message_received_at >= since))).scalars().all()
    questionnaires = await questionnaire_trends(session, [participant.id], per_questionnaire=QUESTIONNAIRES_IN_TRENDS)
    return Trends(participant.alias, trend_days, answered, missed, held, cant, len(alerts),
                  sum(1 for s in alerts if s in UNRESOLVED), questionnaires.get(participant.id, ()),
                  attended, missed_sessions)


async def _sessions_between(session: AsyncSession, participant_id: int, since: datetime,
                            now: datetime) -> tuple[int, int, int, int]:
    """Among the participant's sessions that ended in the period: (held, of which they said "can't
    attend", of which the facilitator marked them there, and not there)."""
    mine = await cal.sessions_of(session, participant_id)
    if not mine:
        return 0, 0, 0, 0
    rows = (await session.execute(
        select(SessionOccurrence.start_at, SessionOccurrence.duration_minutes, Attendance.status,
               SessionPresence.present)
        .join(ProgramSession, ProgramSession.id == SessionOccurrence.session_id)
        .outerjoin(Attendance, (Attendance.occurrence_id == SessionOccurrence.id)
                   & (Attendance.participant_id == participant_id))
        .outerjoin(SessionPresence, (SessionPresence.occurrence_id == SessionOccurrence.id)
                   & (SessionPresence.participant_id == participant_id))
        .where(SessionOccurrence.session_id.in_(mine), SessionOccurrence.start_at >= since,
               SessionOccurrence.start_at <= now, SessionOccurrence.cancelled_at.is_(None),
               ProgramSession.cancelled_at.is_(None)))).all()
    ended = [(status, present) for start, minutes, status, present in rows
             if start + timedelta(minutes=minutes) <= now]
    return (len(ended), sum(1 for s, _ in ended if s == AttendanceStatus.CANT_ATTEND),
            sum(1 for _, p in ended if p is True), sum(1 for _, p in ended if p is False))


# --- the digest: the last 24 hours of a caseload -------------------------------------------------------

@dataclass(frozen=True)
class DigestAlert:
    participant_id: int
    alias: str
    level: int
    status: str
    received_at: datetime
    new: bool  # flagged in the period (otherwise: older, still open)
    outcome: str | None = None  # how it ended, when resolved


@dataclass(frozen=True)
class DigestConcern:
    participant_id: int
    alias: str
    day: date
    level: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DigestConcernMessages:
    participant_id: int
    alias: str
    count: int
    categories: tuple[str, ...]


@dataclass(frozen=True)
class DigestMissed:
    participant_id: int
    alias: str
    missed: int  # missed check-ins that expired in the period
    in_a_row: int  # the run of misses now (0: answered since)


@dataclass(frozen=True)
class DigestAbsence:
    participant_id: int
    alias: str
    start_at: datetime
    timezone: str


@dataclass(frozen=True)
class DigestQuestionnaire:
    """A questionnaire completed in the period, with the change since the one before."""

    participant_id: int
    alias: str
    trend: QuestionnaireTrend


@dataclass(frozen=True)
class Digest:
    since: datetime
    until: datetime
    participants: int
    alerts: tuple[DigestAlert, ...] = ()
    concerns: tuple[DigestConcern, ...] = ()
    concern_messages: tuple[DigestConcernMessages, ...] = ()
    missed: tuple[DigestMissed, ...] = ()
    absences: tuple[DigestAbsence, ...] = ()
    blocked: tuple[tuple[int, str], ...] = ()  # (participant id, alias) who blocked the bot in the period
    not_sent: dict[str, int] = field(default_factory=dict)  # scheduled rows expired unsent, by kind
    questionnaires: tuple[DigestQuestionnaire, ...] = ()  # marked ones first

    @property
    def participant_ids(self) -> set[int]:
        """Whose data the digest shows: each is a disclosure to its reader (42 CFR Part 2)."""
        ids = {a.participant_id for a in self.alerts} | {c.participant_id for c in self.concerns}
        ids |= {c.participant_id for c in self.concern_messages}
        ids |= {m.participant_id for m in self.missed} | {a.participant_id for a in self.absences}
        ids |= {q.participant_id for q in self.questionnaires}
        return ids | {pid for pid, _ in self.blocked}

    @property
    def empty(self) -> bool:
        return not (self.alerts or self.concerns or self.concern_messages or self.missed or self.absences
                    or self.blocked or self.not_sent or self.questionnaires)


async def digest_for(session: AsyncSession, staff: Staff, now: datetime, *, hours: int = DIGEST_HOURS,
                     expire_hours: float = 12.0) -> Digest:
    """What happened in this staff member's caseload in the last `hours`, and alerts still open."""
    since = now - timedelta(hours=hours)
    people = dict((await session.execute(
        select(Participant.id, Participant.alias).where(visible_participants(staff)))).all())
    ids = list(people)
    if not ids:
        return Digest(since, now, 0)
    escalations = (await session.execute(
        select(Escalation.participant_id, Escalation.level, Escalation.status, Escalation.message_received_at,
               Escalation.outcome)
        .where(Escalation.participant_id.in_(ids),
               or_(Escalation.status.in_(UNRESOLVED), Escalation.message_received_at >= since,
                   Escalation.resolved_at >= since))
        .order_by(Escalation.level.desc(), Escalation.message_received_at))).all()
    alerts = tuple(DigestAlert(pid, people[pid], int(level), status, at, at >= since, outcome)
                   for pid, level, status, at, outcome in escalations)
    runs = (await session.execute(
        select(FlowRun.participant_id, FlowRun.local_date, FlowRun.level, FlowRun.reasons, FlowRun.started_at)
        .where(FlowRun.participant_id.in_(ids), FlowRun.kind == CHECKIN, FlowRun.level >= Level.CONCERN,
               or_(FlowRun.started_at >= since, FlowRun.finished_at >= since))
        .order_by(FlowRun.level.desc(), FlowRun.started_at))).all()
    concerns = tuple(DigestConcern(pid, people[pid], day or started.date(), int(level),
                                   tuple(x for x in reasons.split(",") if x))
                     for pid, day, level, reasons, started in runs)
    concern_messages = tuple(sorted(
        (DigestConcernMessages(pid, people[pid], n, categories)
         for pid, (n, categories) in (await _concern_messages(session, ids, since)).items()),
        key=lambda c: (-c.count, c.alias.casefold())))
    missed_counts = dict((await session.execute(
        select(ParticipantEvent.participant_id, func.count())
        .where(ParticipantEvent.participant_id.in_(ids), ParticipantEvent.kind == "missed_checkin",
               ParticipantEvent.at >= since)
        .group_by(ParticipantEvent.participant_id))).all())
    runs_now = await missed_in_a_row(session, list(missed_counts), now,
                                     open_after=now - timedelta(hours=expire_hours))
    missed = tuple(sorted(
        (DigestMissed(pid, people[pid], int(n), runs_now.get(pid, (0, ""))[0]) for pid, n in missed_counts.items()),
        key=lambda m: (-m.in_a_row, -m.missed, m.alias.casefold())))
    absences = tuple(DigestAbsence(pid, people[pid], start, tz) for pid, start, tz in (await session.execute(
        select(Attendance.participant_id, SessionOccurrence.start_at, ProgramSession.timezone)
        .join(SessionOccurrence, SessionOccurrence.id == Attendance.occurrence_id)
        .join(ProgramSession, ProgramSession.id == SessionOccurrence.session_id)
        .where(Attendance.participant_id.in_(ids), Attendance.status == AttendanceStatus.CANT_ATTEND,
               Attendance.updated_at >= since, SessionOccurrence.cancelled_at.is_(None),
               ProgramSession.cancelled_at.is_(None))
        .order_by(SessionOccurrence.start_at))).all())
    # From the events, not unreachable_at: someone who blocked the bot and came back within the
    # period blocked it all the same.
    blocked = tuple(sorted(((pid, people[pid]) for pid in (await session.scalars(
        select(ParticipantEvent.participant_id).distinct().where(
            ParticipantEvent.participant_id.in_(ids), ParticipantEvent.kind == "blocked_bot",
            ParticipantEvent.at >= since, ParticipantEvent.at <= now))).all()),
        key=lambda b: b[1].casefold()))
    not_sent = dict((await session.execute(
        select(ScheduledAction.kind, func.count())
        .where(ScheduledAction.participant_id.in_(ids), ScheduledAction.status == ActionStatus.EXPIRED,
               ScheduledAction.due_at >= since, ScheduledAction.due_at <= now)
        .group_by(ScheduledAction.kind))).all())
    completed = set((await session.execute(
        select(InstrumentScore.participant_id, InstrumentScore.instrument_id)
        .where(InstrumentScore.participant_id.in_(ids), InstrumentScore.completed_at >= since,
               InstrumentScore.completed_at <= now))).all())
    trends = await questionnaire_trends(session, sorted({pid for pid, _ in completed}))
    questionnaires = tuple(sorted(
        (DigestQuestionnaire(pid, people[pid], t) for pid, found in trends.items() for t in found
         if (pid, t.instrument_id) in completed),
        key=lambda q: (not q.trend.notable, q.alias.casefold())))
    return Digest(since, now, len(ids), alerts, concerns, concern_messages, missed, absences, blocked,
                  {k: int(n) for k, n in sorted(not_sent.items())}, questionnaires)
