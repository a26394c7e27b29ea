"""Attendance: "I can't attend", the reason, and telling the facilitator and the clinician.

The absence is written when the participant taps "Can't attend". The facilitator and the assigned
clinician are told when the reason comes, or after `[attendance] reason_wait_minutes` without one
(never later than the start), so an unanswered question never means an untold absence.
Several "can't attend" in a row notify the clinician: silence is a signal (CLINICAL.md 6).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.calendar_models import Attendance, AttendanceStatus, ProgramSession, SessionOccurrence
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.services.calendar import occurrences as cal
from bot.services.scheduling.rows import enqueue

REASONS = ("sick", "work", "family", "transport", "other")
NOTE_MAX_CHARS = 500


class Outcome(StrEnum):
    RECORDED = "recorded"
    ALREADY = "already"  # they said so before
    NOT_YOURS = "not_yours"  # not a session this participant is in
    CANCELLED = "cancelled"
    OVER = "over"  # the session has ended


async def _check(session: AsyncSession, participant: Participant, occ: SessionOccurrence | None,
                 now: datetime) -> Outcome | None:
    if occ is None or not await cal.is_for(session, occ, participant.id):
        return Outcome.NOT_YOURS
    if occ.is_cancelled:
        return Outcome.CANCELLED
    if occ.start_at + timedelta(minutes=occ.duration_minutes) <= now:
        return Outcome.OVER
    return None


async def answer_of(session: AsyncSession, participant_id: int, occurrence_id: int) -> Attendance | None:
    return await session.scalar(select(Attendance).where(
        Attendance.participant_id == participant_id, Attendance.occurrence_id == occurrence_id))


def _staff_to_tell(participant: Participant, ps: ProgramSession) -> list[int]:
    ids = [ps.facilitator_id, participant.therapist_id]
    return [i for i in dict.fromkeys(ids) if i is not None]


async def cant_attend(session: AsyncSession, settings: Settings, participant: Participant,
                      occ: SessionOccurrence | None, now: datetime) -> Outcome:
    """Record that the participant will miss `occ`; staff are told once the reason is in."""
    problem = await _check(session, participant, occ, now)
    if problem is not None:
        return problem
    assert occ is not None
    answer = await answer_of(session, participant.id, occ.id)
    if answer is not None and answer.status == AttendanceStatus.CANT_ATTEND:
        return Outcome.ALREADY
    if answer is None:
        answer = Attendance(participant_id=participant.id, occurrence_id=occ.id, responded_at=now)
        session.add(answer)
    answer.status, answer.reason, answer.note, answer.updated_at = AttendanceStatus.CANT_ATTEND, None, None, now
    answer.responded_at = now
    await session.flush()
    wait = timedelta(minutes=settings.attendance.reason_wait_minutes)
    due = max(now, min(now + wait, occ.start_at))
    for staff_id in _staff_to_tell(participant, occ.session):
        await enqueue(
            session, kind=cal.ATTENDANCE_NOTICE_KIND, due_at=due, now=now, participant_id=participant.id,
            staff_id=staff_id, key=f"attendance:{occ.id}:{participant.id}:{staff_id}:cant:{now:%Y%m%dT%H%M%S}",
            payload={"occurrence_id": occ.id, "event": "cant_attend"},
        )
    await _notice_a_run(session, settings, participant, occ, now)
    return Outcome.RECORDED


async def give_reason(session: AsyncSession, participant: Participant, occ: SessionOccurrence, reason: str,
                      note: str | None, now: datetime) -> bool:
    """Store the reason (and what they typed) and let the waiting notices go now."""
    answer = await answer_of(session, participant.id, occ.id)
    if answer is None or answer.status != AttendanceStatus.CANT_ATTEND or reason not in REASONS:
        return False
    answer.reason = reason
    if note:
        answer.note = note.strip()[:NOTE_MAX_CHARS]
    answer.updated_at = now
    await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.kind == cal.ATTENDANCE_NOTICE_KIND, ScheduledAction.status == ActionStatus.PENDING,
               ScheduledAction.key.like(f"attendance:{occ.id}:{participant.id}:%"))
        .values(due_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


async def can_attend_after_all(session: AsyncSession, participant: Participant, occ: SessionOccurrence | None,
                               now: datetime) -> Outcome:
    """They can come after all: notices not sent yet are dropped; staff already told hear the news."""
    problem = await _check(session, participant, occ, now)
    if problem is not None:
        return problem
    assert occ is not None
    answer = await answer_of(session, participant.id, occ.id)
    if answer is None or answer.status == AttendanceStatus.ATTENDING:
        if answer is None:
            session.add(Attendance(participant_id=participant.id, occurrence_id=occ.id, responded_at=now,
                                   updated_at=now, status=AttendanceStatus.ATTENDING))
            return Outcome.RECORDED
        return Outcome.ALREADY
    answer.status, answer.updated_at = AttendanceStatus.ATTENDING, now
    notices = (await session.scalars(select(ScheduledAction).where(
        ScheduledAction.kind == cal.ATTENDANCE_NOTICE_KIND,
        ScheduledAction.key.like(f"attendance:{occ.id}:{participant.id}:%:cant:%")))).all()
    told = {n.staff_id for n in notices if n.status in (ActionStatus.SENT, ActionStatus.CLAIMED)}
    for n in notices:
        if n.status == ActionStatus.PENDING:
            n.status, n.last_error = ActionStatus.CANCELLED, "participant can attend after all"
    for staff_id in sorted(s for s in told if s is not None):
        await enqueue(
            session, kind=cal.ATTENDANCE_NOTICE_KIND, due_at=now, now=now, participant_id=participant.id,
            staff_id=staff_id, key=f"attendance:{occ.id}:{participant.id}:{staff_id}:back:{now:%Y%m%dT%H%M%S}",
            payload={"occurrence_id": occ.id, "event": "attending"},
        )
    return Outcome.RECORDED


async def cant_attend_run(session: AsyncSession, participant_id: int, occ: SessionOccurrence, limit: int) -> int:
    """How many of the participant's sessions up to `occ` (not cancelled) they said they can't
    attend, in a row, counting back from `occ` (at most `limit`)."""
    mine = await cal.sessions_of(session, participant_id)
    rows = (await session.execute(
        select(SessionOccurrence.id, Attendance.status)
        .join(ProgramSession, ProgramSession.id == SessionOccurrence.session_id)
        .outerjoin(Attendance, (Attendance.occurrence_id == SessionOccurrence.id)
                   & (Attendance.participant_id == participant_id))
        .where(SessionOccurrence.session_id.in_(mine), SessionOccurrence.start_at <= occ.start_at,
               SessionOccurrence.cancelled_at.is_(None), ProgramSession.cancelled_at.is_(None))
        .order_by(SessionOccurrence.start_at.desc(), SessionOccurrence.id.desc())
        .limit(limit)
    )).all()
    run = 0
    for _, status in rows:
        if status != AttendanceStatus.CANT_ATTEND:
            break
        run += 1
    return run


async def _notice_a_run(session: AsyncSession, settings: Settings, participant: Participant,
                        occ: SessionOccurrence, now: datetime) -> None:
    every = settings.attendance.notify_clinician_after
    run = await cant_attend_run(session, participant.id, occ, every * 10)
    if run and run % every == 0:
        await enqueue(
            session, kind="staff_notice", key=f"cant_attend_run:{participant.id}:{occ.id}", due_at=now, now=now,
            participant_id=participant.id, staff_id=participant.therapist_id,
            payload={"notice": "cant_attend_run", "count": run},
        )


async def attendance_export(session: AsyncSession, participant_id: int) -> list[dict[str, str | None]]:
    """The participant's own attendance answers, for /mydata."""
    rows = (await session.scalars(select(Attendance).where(Attendance.participant_id == participant_id)
                                  .order_by(Attendance.responded_at))).unique().all()
    return [{"session_start": a.occurrence.start_at.isoformat(), "kind": a.occurrence.session.kind,
             "status": a.status, "reason": a.reason, "note": a.note, "answered_at": a.responded_at.isoformat()}
            for a in rows]
