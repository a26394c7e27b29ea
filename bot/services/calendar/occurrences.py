"""The session calendar: occurrences, who a session is for, cancelling and moving, and reminder rows.

Occurrences are materialized a few days ahead from each session's weekly rule. Reminders are
ScheduledAction rows keyed `reminder:<occurrence>:<participant>:<offset>`; `plan_reminders`
reconciles them with the calendar (adds missing rows, re-times moved ones, cancels rows that no
longer apply, revives rows of a participant who resumed), so it can run on every tick, from any
number of workers, and inside the transaction of any change to the calendar.

Quiet hours (a participant's own, wall clock in their zone, may wrap midnight):
- a reminder at most `[reminders] quiet_hours_exempt_minutes` before the start (the 15-minute
  one) is sent even in quiet hours: the session is about to begin;
- a longer one (the 24-hour one) that would fall in quiet hours is sent one minute before those
  quiet hours begin. If that moment has already passed when the session is planned, that reminder
  is skipped and the short one still goes.

This module does not import aiogram, so the `iopbot sessions` commands start quickly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.calendar_models import (
    GroupMembership,
    ParticipantGroup,
    ProgramSession,
    SessionAttendee,
    SessionOccurrence,
)
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.services.calendar.recurrence import WeeklyRule, local_to_utc, occurrences_between, parse_rrule
from bot.services.scheduling.rows import enqueue

REMINDER_KIND = "session_reminder"
UPDATE_KIND = "session_update"  # "your session is cancelled / has moved"
ATTENDANCE_NOTICE_KIND = "attendance_notice"  # "P-101 can't attend", to facilitator and clinician
# A reminder planned a little after its time (a session added at the last minute) still goes.
LATE_TOLERANCE = timedelta(minutes=10)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# --- actions ----------------------------------------------------------------------------------

def reminder_key(occurrence_id: int, participant_id: int, offset_minutes: int) -> str:
    return f"reminder:{occurrence_id}:{participant_id}:{offset_minutes}"


def _occurrence_keys(occurrence_ids: Iterable[int]) -> Any:
    return or_(*[ScheduledAction.key.like(f"reminder:{i}:%") for i in occurrence_ids])


# --- rules and occurrences ----------------------------------------------------------------------

def first_local(ps: ProgramSession) -> datetime:
    """The first session's wall time in the host zone (naive)."""
    return ps.first_start.astimezone(zone(ps.timezone)).replace(tzinfo=None)


def rule_of(ps: ProgramSession) -> WeeklyRule | None:
    return parse_rrule(ps.rrule) if ps.rrule else None


def exdates_of(ps: ProgramSession) -> frozenset[datetime]:
    return frozenset(datetime.fromisoformat(d) for d in ps.exdates or [])


def starts_between(ps: ProgramSession, start: datetime, end: datetime) -> list[datetime]:
    """UTC starts the session's rule gives in [start, end)."""
    return occurrences_between(rule_of(ps), first_local(ps), zone(ps.timezone), start, end,
                               exdates=exdates_of(ps))


async def materialize(session: AsyncSession, start: datetime, end: datetime, now: datetime, *,
                      session_ids: Sequence[int] | None = None) -> int:
    """Make sure an occurrence row exists for every rule start in [start, end). Idempotent and
    safe with several workers. Returns how many rows were added."""
    query = select(ProgramSession).where(ProgramSession.cancelled_at.is_(None))
    if session_ids is not None:
        query = query.where(ProgramSession.id.in_(session_ids))
    series = (await session.scalars(query)).unique().all()
    if not series:
        return 0
    existing = {
        (sid, when) for sid, when in (await session.execute(
            select(SessionOccurrence.session_id, SessionOccurrence.original_start)
            .where(SessionOccurrence.session_id.in_([s.id for s in series]),
                   SessionOccurrence.original_start >= start, SessionOccurrence.original_start < end)
        )).all()
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = 0
    for ps in series:
        for when in starts_between(ps, start, end):
            if (ps.id, when) in existing:
                continue
            result = await session.execute(
                insert(SessionOccurrence).values(session_id=ps.id, original_start=when, start_at=when,
                                                 duration_minutes=ps.duration_minutes, created_at=now)
                .on_conflict_do_nothing(index_elements=["session_id", "original_start"])
            )
            added += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return added


async def occurrence_on(session: AsyncSession, ps: ProgramSession, day: date, now: datetime) -> list[SessionOccurrence]:
    """The occurrences of `ps` on a local date in the host zone (by where the rule puts them, or
    where they were moved to), materialized."""
    tz = zone(ps.timezone)
    day_start = local_to_utc(datetime.combine(day, time()), tz)
    day_end = local_to_utc(datetime.combine(day + timedelta(days=1), time()), tz)
    await materialize(session, day_start, day_end, now, session_ids=[ps.id])
    rows = (await session.scalars(
        select(SessionOccurrence).where(
            SessionOccurrence.session_id == ps.id,
            or_(SessionOccurrence.original_start.between(day_start, day_end - timedelta(seconds=1)),
                SessionOccurrence.start_at.between(day_start, day_end - timedelta(seconds=1))))
        .order_by(SessionOccurrence.start_at)
    )).unique().all()
    return list(rows)


async def upcoming(session: AsyncSession, now: datetime, until: datetime, *,
                   include_cancelled: bool = False) -> list[SessionOccurrence]:
    """Occurrences starting in (now, until], materialized first, earliest first."""
    await materialize(session, now, until, now)
    query = (select(SessionOccurrence).join(ProgramSession)
             .where(SessionOccurrence.start_at > now, SessionOccurrence.start_at <= until)
             .order_by(SessionOccurrence.start_at, SessionOccurrence.id))
    if not include_cancelled:
        query = query.where(SessionOccurrence.cancelled_at.is_(None), ProgramSession.cancelled_at.is_(None))
    return list((await session.scalars(query)).unique().all())


# --- who a session is for ------------------------------------------------------------------------

async def audience(session: AsyncSession, session_ids: Iterable[int]) -> dict[int, set[int]]:
    """Participant ids per program session: the group's members and the named attendees."""
    ids = list(set(session_ids))
    found: dict[int, set[int]] = defaultdict(set)
    if not ids:
        return found
    for sid, pid in (await session.execute(
        select(ProgramSession.id, GroupMembership.participant_id)
        .join(GroupMembership, GroupMembership.group_id == ProgramSession.group_id)
        .where(ProgramSession.id.in_(ids))
    )).all():
        found[sid].add(pid)
    for sid, pid in (await session.execute(
        select(SessionAttendee.session_id, SessionAttendee.participant_id).where(SessionAttendee.session_id.in_(ids))
    )).all():
        found[sid].add(pid)
    return found


async def sessions_of(session: AsyncSession, participant_id: int) -> set[int]:
    """Program session ids a participant is expected at."""
    by_group = select(ProgramSession.id).join(
        GroupMembership, GroupMembership.group_id == ProgramSession.group_id
    ).where(GroupMembership.participant_id == participant_id)
    named = select(SessionAttendee.session_id).where(SessionAttendee.participant_id == participant_id)
    return set((await session.scalars(by_group)).all()) | set((await session.scalars(named)).all())


async def is_for(session: AsyncSession, occurrence: SessionOccurrence, participant_id: int) -> bool:
    return occurrence.session_id in await sessions_of(session, participant_id)


async def participant_upcoming(session: AsyncSession, participant: Participant, now: datetime,
                               until: datetime) -> list[SessionOccurrence]:
    """A participant's own upcoming, not cancelled occurrences, earliest first."""
    mine = await sessions_of(session, participant.id)
    if not mine:
        return []
    await materialize(session, now, until, now, session_ids=sorted(mine))
    return list((await session.scalars(
        select(SessionOccurrence).join(ProgramSession)
        .where(SessionOccurrence.session_id.in_(mine), SessionOccurrence.start_at > now,
               SessionOccurrence.start_at <= until, SessionOccurrence.cancelled_at.is_(None),
               ProgramSession.cancelled_at.is_(None))
        .order_by(SessionOccurrence.start_at, SessionOccurrence.id)
    )).unique().all())


# --- groups --------------------------------------------------------------------------------------

async def group_by_name(session: AsyncSession, name: str) -> ParticipantGroup | None:
    return await session.scalar(select(ParticipantGroup).where(ParticipantGroup.name == name))


async def get_or_create_group(session: AsyncSession, name: str, now: datetime) -> ParticipantGroup:
    group = await group_by_name(session, name)
    if group is None:
        group = ParticipantGroup(name=name, created_at=now)
        session.add(group)
        await session.flush()
    return group


async def group_members(session: AsyncSession, group_id: int) -> list[Participant]:
    return list((await session.scalars(
        select(Participant).join(GroupMembership, GroupMembership.participant_id == Participant.id)
        .where(GroupMembership.group_id == group_id).order_by(Participant.alias)
    )).unique().all())


async def set_membership(session: AsyncSession, settings: Settings, group: ParticipantGroup,
                         participants: Sequence[Participant], now: datetime, *, member: bool) -> int:
    """Add or remove participants; their reminders follow in the same transaction."""
    changed = 0
    for p in participants:
        row = await session.scalar(select(GroupMembership).where(
            GroupMembership.group_id == group.id, GroupMembership.participant_id == p.id))
        if member and row is None:
            session.add(GroupMembership(group_id=group.id, participant_id=p.id, joined_at=now))
            changed += 1
        elif not member and row is not None:
            await session.delete(row)
            changed += 1
    await session.flush()
    if changed:
        await plan_reminders(session, settings, now, participant_ids=[p.id for p in participants])
    return changed


# --- quiet hours -----------------------------------------------------------------------------------

def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_window(participant: Participant, at: datetime) -> tuple[datetime, datetime] | None:
    """The participant's quiet hours (UTC start, end) that contain `at`, or None."""
    if participant.quiet_start == participant.quiet_end:
        return None
    tz = zone(participant.timezone)
    start, end = _hhmm(participant.quiet_start), _hhmm(participant.quiet_end)
    local = at.astimezone(tz)
    today = local.date()
    candidates = []
    for day in (today - timedelta(days=1), today):
        begin = datetime.combine(day, start)
        finish = datetime.combine(day if start < end else day + timedelta(days=1), end)
        candidates.append((local_to_utc(begin, tz), local_to_utc(finish, tz)))
    for begin_utc, end_utc in candidates:
        if begin_utc <= at < end_utc:
            return begin_utc, end_utc
    return None


def reminder_due(settings: Settings, participant: Participant, start_at: datetime, offset_minutes: int) -> datetime:
    """When a reminder `offset_minutes` before `start_at` goes, after the quiet-hours rule
    (see the module docstring). Depends only on the calendar and the participant, never on now."""
    intended = start_at - timedelta(minutes=offset_minutes)
    if offset_minutes <= settings.reminders.quiet_hours_exempt_minutes:
        return intended
    window = quiet_window(participant, intended)
    if window is None:
        return intended
    return window[0] - timedelta(minutes=1)


# --- reminders -------------------------------------------------------------------------------------

@dataclass
class PlanResult:
    added: int = 0
    retimed: int = 0
    cancelled: int = 0
    revived: int = 0


async def plan_reminders(session: AsyncSession, settings: Settings, now: datetime, *,
                         occurrence_ids: Sequence[int] | None = None,
                         participant_ids: Sequence[int] | None = None) -> PlanResult:
    """Reconcile reminder rows with the calendar, for everything (the tick) or for some
    occurrences or participants (inside the transaction of a change). Idempotent."""
    horizon = now + timedelta(hours=settings.reminders.plan_ahead_hours)
    result = PlanResult()
    if occurrence_ids is not None and not occurrence_ids:
        return result
    existing_query = select(ScheduledAction).where(
        ScheduledAction.kind == REMINDER_KIND,
        or_(ScheduledAction.status == ActionStatus.PENDING,
            (ScheduledAction.status == ActionStatus.CANCELLED) & (ScheduledAction.due_at > now - LATE_TOLERANCE)),
    ).order_by(ScheduledAction.id)
    if occurrence_ids is not None:
        existing_query = existing_query.where(_occurrence_keys(occurrence_ids))
    if participant_ids is not None:
        existing_query = existing_query.where(ScheduledAction.participant_id.in_(participant_ids))
    existing = {row.key: row for row in (await session.scalars(existing_query)).all()}

    # The occurrences to plan: those starting within the planning window, and (so that a session
    # moved further out keeps its reminders) every occurrence an existing row points at.
    query = select(SessionOccurrence).join(ProgramSession)
    if occurrence_ids is None:
        await materialize(session, now, horizon, now)
        referenced = {int(row.payload.get("occurrence_id", 0)) for row in existing.values()}
        query = query.where(or_(SessionOccurrence.start_at.between(now, horizon),
                                SessionOccurrence.id.in_(referenced)))
    else:
        query = query.where(SessionOccurrence.id.in_(occurrence_ids))
    occs = list((await session.scalars(query)).unique().all())
    who = await audience(session, {o.session_id for o in occs})
    wanted_people = {pid for pids in who.values() for pid in pids}
    if participant_ids is not None:
        wanted_people &= set(participant_ids)
    people = {p.id: p for p in (await session.scalars(
        select(Participant).where(Participant.id.in_(wanted_people)))).unique().all()} if wanted_people else {}

    desired: dict[str, tuple[datetime, datetime, SessionOccurrence, int, int]] = {}
    for occ in occs:
        if occ.is_cancelled or occ.start_at <= now:
            continue
        for pid in who.get(occ.session_id, ()):
            person = people.get(pid)
            if person is None or not person.receives_messages:
                continue
            for offset in settings.reminders.offsets_minutes:
                due = reminder_due(settings, person, occ.start_at, offset)
                intended = occ.start_at - timedelta(minutes=offset)
                desired[reminder_key(occ.id, pid, offset)] = (due, intended, occ, pid, offset)

    for key, row in existing.items():
        want = desired.get(key)
        if want is None:
            if row.status == ActionStatus.PENDING:
                row.status = ActionStatus.CANCELLED
                row.last_error = "session cancelled or moved, or participant no longer expected"
                result.cancelled += 1
            continue
        due, intended = want[0], want[1]
        if row.status == ActionStatus.PENDING:
            if row.due_at != due or row.intended_at != intended:
                row.due_at, row.intended_at = due, intended
                result.retimed += 1
        elif due >= now - LATE_TOLERANCE:  # cancelled (paused, removed, cancelled session), wanted again
            row.status, row.due_at, row.intended_at, row.last_error = ActionStatus.PENDING, due, intended, None
            result.revived += 1
    for key, (due, intended, occ, pid, offset) in desired.items():
        if key in existing or due < now - LATE_TOLERANCE:
            continue
        if await enqueue(session, kind=REMINDER_KIND, key=key, due_at=due, intended_at=intended, now=now,
                            participant_id=pid, payload={"occurrence_id": occ.id, "offset_minutes": offset}):
            result.added += 1
    await session.flush()
    return result


async def cancel_reminders(session: AsyncSession, occurrence_ids: Sequence[int], why: str) -> int:
    if not occurrence_ids:
        return 0
    result = await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.kind == REMINDER_KIND, ScheduledAction.status == ActionStatus.PENDING,
               _occurrence_keys(occurrence_ids))
        .values(status=ActionStatus.CANCELLED, last_error=why)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- changes an operator makes ---------------------------------------------------------------------

class CalendarError(Exception):
    """An operator's request that cannot be done; the message says why and what to do."""


async def _tell_participants(session: AsyncSession, occ: SessionOccurrence, change: str, now: datetime,
                             extra: dict[str, Any]) -> int:
    """A `session_update` row for each participant of an upcoming occurrence that changed."""
    old = datetime.fromisoformat(extra["from_start"]) if "from_start" in extra else occ.start_at
    if max(occ.start_at, old) <= now:
        return 0  # already over: nobody needs to hear about it
    people = (await audience(session, [occ.session_id])).get(occ.session_id, set())
    told = 0
    stamp = occ.start_at.strftime("%Y%m%dT%H%M")
    for pid in sorted(people):
        participant = await session.get(Participant, pid)
        if participant is None or not participant.receives_messages:
            continue
        told += await enqueue(session, kind=UPDATE_KIND, key=f"session_update:{occ.id}:{pid}:{change}:{stamp}",
                                 due_at=now, now=now, participant_id=pid,
                                 payload={"occurrence_id": occ.id, "change": change, **extra})
    return told


async def cancel_occurrence(session: AsyncSession, occ: SessionOccurrence, now: datetime) -> int:
    """Cancel one occurrence: pending reminders are cancelled and participants told, all in this
    transaction. Returns how many participants will be told."""
    if occ.cancelled_at is not None:
        raise CalendarError("that occurrence is already cancelled")
    occ.cancelled_at = now
    await cancel_reminders(session, [occ.id], "session cancelled")
    await _cancel_attendance_notices(session, occ.id)
    told = await _tell_participants(session, occ, "cancelled", now, {})
    await session.flush()
    return told


async def cancel_series(session: AsyncSession, settings: Settings, ps: ProgramSession, now: datetime) -> int:
    """Cancel a whole series from now on. Participants are told about the occurrences in the
    planning window (the ones they may have been reminded of)."""
    if ps.cancelled_at is not None:
        raise CalendarError(f"session {ps.id} is already cancelled")
    horizon = now + timedelta(hours=settings.reminders.plan_ahead_hours)
    await materialize(session, now, horizon, now, session_ids=[ps.id])
    future = (await session.scalars(select(SessionOccurrence).where(
        SessionOccurrence.session_id == ps.id, SessionOccurrence.start_at > now,
        SessionOccurrence.cancelled_at.is_(None)))).unique().all()
    ps.cancelled_at = now
    ps.updated_at = now
    told = 0
    for occ in future:
        occ.cancelled_at = now
        await _cancel_attendance_notices(session, occ.id)
        if occ.start_at <= horizon:
            told += await _tell_participants(session, occ, "cancelled", now, {})
    await cancel_reminders(session, [o.id for o in future], "session cancelled")
    await session.flush()
    return told


async def move_occurrence(session: AsyncSession, settings: Settings, occ: SessionOccurrence, new_start: datetime,
                          now: datetime, *, duration_minutes: int | None = None) -> int:
    """Move one occurrence: reminders are re-timed (or cancelled, or added) and participants
    told, in this transaction. Returns how many participants will be told."""
    if occ.cancelled_at is not None:
        raise CalendarError("that occurrence is cancelled; it cannot be moved")
    if new_start <= now:
        raise CalendarError("the new time is in the past")
    old_start = occ.start_at
    occ.start_at = new_start
    occ.moved_at = now
    if duration_minutes is not None:
        occ.duration_minutes = duration_minutes
    await session.flush()
    await plan_reminders(session, settings, now, occurrence_ids=[occ.id])
    told = await _tell_participants(session, occ, "moved", now, {"from_start": old_start.isoformat()})
    await session.flush()
    return told


async def _cancel_attendance_notices(session: AsyncSession, occurrence_id: int) -> None:
    await session.execute(
        update(ScheduledAction)
        .where(ScheduledAction.kind == ATTENDANCE_NOTICE_KIND, ScheduledAction.status == ActionStatus.PENDING,
               ScheduledAction.key.like(f"attendance:{occurrence_id}:%"))
        .values(status=ActionStatus.CANCELLED, last_error="session cancelled")
        .execution_options(synchronize_session=False)
    )


# --- for an operator's terminal ----------------------------------------------------------------------

def describe_local(when: datetime, tz: str) -> str:
    """A time for an operator's terminal: 'Tue 2026-03-03 15:00 CST'."""
    local = when.astimezone(ZoneInfo(tz))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def parse_local_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date like 2026-03-03") from None

