"""What an export holds, gathered from the database: per participant, by alias only.

Minimum necessary (HIPAA 164.502(b); 42 CFR Part 2 discloses only what the purpose needs): the
alias the program chose is the only identifier (never a Telegram id; iopbot stores no names), and
free text (a check-in note, a reason typed for missing a session, a clinician's note on an alert)
is read only when the operator asks for it (`include_notes`). Everything else is numbers, codes
and times. Nothing here logs or prints what it reads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from bot.content.checkins import Question, check_questionnaires
from bot.content.instruments import FALLBACK_LOCALE, Instrument, check_instruments
from bot.db.calendar_models import Attendance
from bot.db.checkin_models import CheckinAnswer, FlowRun
from bot.db.instrument_models import InstrumentAnswer, InstrumentScore
from bot.db.models import Escalation, Participant, ParticipantStatus

# No consent, so nothing was stored beyond the refusal or the invitation: nothing to export.
NOT_EXPORTABLE = frozenset({ParticipantStatus.INVITED, ParticipantStatus.CONSENT_PENDING, ParticipantStatus.DECLINED})
LEVEL_NAMES = {0: "none", 1: "concern", 2: "urgent", 3: "imminent"}


class ExportError(Exception):
    """The export cannot be made as asked; the message says what to do (one line)."""


@dataclass(frozen=True)
class CheckinRecord:
    answer_id: int  # names the FHIR Observation, so a second export of the same answer is recognised
    date: date
    question: str
    number: float | None
    choice: str | None
    note: str | None  # free text, only with include_notes
    answered_at: datetime


@dataclass(frozen=True)
class ItemAnswer:
    item: str
    value: int


@dataclass(frozen=True)
class QuestionnaireRecord:
    response_id: int  # the flow run: links the items (csv) and names the FHIR resources
    instrument: str
    version: str
    locale: str
    date: date | None
    total: int
    band: str
    level: str  # "urgent" when a safety item (PHQ-9 item 9) was above 0
    completed_at: datetime
    items: tuple[ItemAnswer, ...]


@dataclass(frozen=True)
class AlertRecord:
    at: datetime  # when the flagged message (or answer) came in
    level: str
    source: str  # message | checkin | instrument
    status: str
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None
    outcome_note: str | None  # the clinician's words, only with include_notes


@dataclass(frozen=True)
class AttendanceRecord:
    session_start: datetime
    session_kind: str
    status: str  # attending | cant_attend (what the participant answered)
    reason: str | None  # sick | work | family | transport | other
    note: str | None  # what they typed, only with include_notes
    answered_at: datetime


@dataclass(frozen=True)
class ParticipantRecord:
    participant_id: int  # for the disclosure log only; never written to an export
    alias: str
    status: str
    consent_version: str | None
    consented_at: datetime | None
    discharged_at: datetime | None
    checkins: tuple[CheckinRecord, ...] = ()
    questionnaires: tuple[QuestionnaireRecord, ...] = ()
    alerts: tuple[AlertRecord, ...] = ()
    attendance: tuple[AttendanceRecord, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """What the content library says about the stored ids: each instrument's English definition
    (titles, item order and LOINC codes; the codes are the same in every language) and each
    check-in question (its kind). An id no longer in the library is still exported, uncoded."""

    instruments: dict[str, Instrument] = field(default_factory=dict)
    questions: dict[str, Question] = field(default_factory=dict)

    @classmethod
    def load(cls, content_dir: Path, checkin_name: str = "daily") -> Catalog:
        instruments = check_instruments(content_dir, allow_drafts=True)[0].get(FALLBACK_LOCALE, {})
        questionnaire = check_questionnaires(content_dir, checkin_name, allow_drafts=True)[0].get(FALLBACK_LOCALE)
        questions = {q.id: q for q in questionnaire.questions} if questionnaire is not None else {}
        return cls(dict(instruments), questions)


async def participants_to_export(session: AsyncSession, alias: str | None) -> list[Participant]:
    """One participant by alias, or (alias None) everyone who consented, by alias."""
    if alias is not None:
        participant = await session.scalar(select(Participant).where(Participant.alias == alias))
        if participant is None:
            raise ExportError(f"no participant with alias {alias!r}; check the spelling (aliases are case-sensitive)")
        if participant.status in NOT_EXPORTABLE:
            raise ExportError(f"{alias} has not consented ({participant.status}): nothing is stored to export")
        return [participant]
    rows = await session.scalars(select(Participant).where(Participant.status.not_in(NOT_EXPORTABLE))
                                 .order_by(Participant.alias))
    return list(rows.all())


async def gather(session: AsyncSession, participants: list[Participant], *, include_notes: bool = False,
                 since: datetime | None = None) -> list[ParticipantRecord]:
    """Each participant's check-in answers, completed questionnaires (items and totals), alerts and
    attendance answers, oldest first, only those from `since` on when given. Free text is not even
    read (so never decrypted) unless `include_notes`; a question skipped, or answered only in words
    without it, is left out."""
    ids = [p.id for p in participants]
    if not ids:
        return []
    start = since or datetime.min.replace(tzinfo=UTC)
    # Deferred columns are not loaded: without include_notes the text never leaves the database.
    notes = () if include_notes else (defer(CheckinAnswer.value_text),)
    checkins: dict[int, list[CheckinRecord]] = defaultdict(list)
    for a in (await session.scalars(select(CheckinAnswer).options(*notes)
                                    .where(CheckinAnswer.participant_id.in_(ids), CheckinAnswer.answered_at >= start)
                                    .order_by(CheckinAnswer.local_date, CheckinAnswer.id))).all():
        text = a.value_text if include_notes else None
        if a.value_number is None and a.value_choice is None and not text:
            continue
        checkins[a.participant_id].append(CheckinRecord(
            a.id, a.local_date, a.question_id, a.value_number, a.value_choice, text, a.answered_at))

    items: dict[int, list[ItemAnswer]] = defaultdict(list)
    completed = (InstrumentScore.participant_id.in_(ids), InstrumentScore.completed_at >= start)
    # Only the items of completed questionnaires (a run left half-way has no score and is not exported).
    for i in (await session.scalars(select(InstrumentAnswer)
                                    .join(InstrumentScore, InstrumentScore.run_id == InstrumentAnswer.run_id)
                                    .where(*completed).order_by(InstrumentAnswer.id))).all():
        items[i.run_id].append(ItemAnswer(i.item_id, i.value))
    questionnaires: dict[int, list[QuestionnaireRecord]] = defaultdict(list)
    scored = (await session.execute(
        select(InstrumentScore, FlowRun.locale).join(FlowRun, FlowRun.id == InstrumentScore.run_id)
        .where(*completed).order_by(InstrumentScore.completed_at, InstrumentScore.id))).all()
    for s, locale in scored:
        questionnaires[s.participant_id].append(QuestionnaireRecord(
            s.run_id, s.instrument_id, s.version, locale, s.local_date, s.total, s.band,
            LEVEL_NAMES.get(s.level, str(s.level)), s.completed_at, tuple(items.get(s.run_id, ()))))

    alerts: dict[int, list[AlertRecord]] = defaultdict(list)
    alert_notes = () if include_notes else (defer(Escalation.outcome_note),)
    for e in (await session.scalars(select(Escalation).options(*alert_notes)
                                    .where(Escalation.participant_id.in_(ids), Escalation.message_received_at >= start)
                                    .order_by(Escalation.message_received_at, Escalation.id))).unique().all():
        alerts[e.participant_id].append(AlertRecord(
            e.message_received_at, LEVEL_NAMES.get(e.level, str(e.level)), e.source, e.status, e.acknowledged_at,
            e.resolved_at, e.outcome, e.outcome_note if include_notes else None))

    attendance: dict[int, list[AttendanceRecord]] = defaultdict(list)
    attendance_notes = () if include_notes else (defer(Attendance.note),)
    for r in (await session.scalars(select(Attendance).options(*attendance_notes)
                                    .where(Attendance.participant_id.in_(ids), Attendance.responded_at >= start)
                                    .order_by(Attendance.responded_at, Attendance.id))).unique().all():
        attendance[r.participant_id].append(AttendanceRecord(
            r.occurrence.start_at, r.occurrence.session.kind, r.status, r.reason,
            r.note if include_notes else None, r.responded_at))

    return [ParticipantRecord(
        p.id, p.alias, p.status, p.consent_version, p.consented_at, p.discharged_at,
        tuple(checkins[p.id]), tuple(questionnaires[p.id]), tuple(alerts[p.id]), tuple(attendance[p.id]))
        for p in participants]
