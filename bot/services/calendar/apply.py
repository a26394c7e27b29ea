"""The database step of `iopbot sessions import`: check the names a file uses, then write its
sessions and plan their reminders, all or nothing.

Everything is checked first and every problem is reported with its line number; if there is any,
nothing is imported. Importing the same file again changes nothing; a session with the same uid
(the iCalendar UID, or the CSV `uid` column) is updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.calendar_models import Attendance, ProgramSession, SessionAttendee, SessionOccurrence
from bot.db.models import Participant, Staff
from bot.services.calendar import occurrences as cal
from bot.services.calendar.spec import OccurrenceChange, Parsed


@dataclass
class ImportReport:
    added: list[ProgramSession] = field(default_factory=list)
    updated: list[ProgramSession] = field(default_factory=list)
    unchanged: list[ProgramSession] = field(default_factory=list)
    kept_cancelled: list[ProgramSession] = field(default_factory=list)  # cancelled by an operator: left so
    new_groups: list[str] = field(default_factory=list)
    empty_groups: list[str] = field(default_factory=list)
    reminders_planned: int = 0


async def check_names(session: AsyncSession, parsed: Parsed) -> None:
    """Unknown facilitators and participants are problems of their line (every line that names one)."""
    staff = set((await session.scalars(select(Staff.alias).where(Staff.active.is_(True)))).all())
    wanted = {alias for _, alias in parsed.participants}
    people = set((await session.scalars(select(Participant.alias).where(Participant.alias.in_(wanted)))).all()) \
        if wanted else set()
    for line, alias in parsed.facilitators:
        if alias not in staff:
            parsed.add(line, f"unknown facilitator {alias!r}: enroll them with `iopbot invite staff` first, "
                             "or fix the alias")
    for line, alias in parsed.participants:
        if alias not in people:
            parsed.add(line, f"unknown participant {alias!r}: invite them first, or fix the alias")
    parsed.problems.sort(key=lambda p: p.line)


async def apply_import(session: AsyncSession, settings: Settings, parsed: Parsed, now: datetime) -> ImportReport:
    """Write the checked sessions (call only when `parsed.problems` is empty), then plan reminders.
    The caller commits once: all of it or nothing."""
    assert not parsed.problems
    report = ImportReport()
    staff = {s.alias: s for s in (await session.scalars(select(Staff))).all()}
    for spec in parsed.specs:
        group_id = None
        if spec.group:
            existed = await cal.group_by_name(session, spec.group)
            group = existed or await cal.get_or_create_group(session, spec.group, now)
            if existed is None and spec.group not in report.new_groups:
                report.new_groups.append(spec.group)
            group_id = group.id
            if not await cal.group_members(session, group.id) and spec.group not in report.empty_groups:
                report.empty_groups.append(spec.group)
        values = dict(title=spec.title, kind=spec.kind, first_start=spec.first_start, timezone=spec.timezone,
                      duration_minutes=spec.duration_minutes, rrule=spec.rrule, exdates=sorted(spec.exdates),
                      video_link=spec.video_link, facilitator_id=staff[spec.facilitator].id, group_id=group_id)
        ps = await session.scalar(select(ProgramSession).where(ProgramSession.uid == spec.uid))
        if ps is None:
            ps = ProgramSession(uid=spec.uid, created_at=now, updated_at=now, **values)
            session.add(ps)
            await session.flush()
            report.added.append(ps)
        elif ps.cancelled_at is not None:
            # Cancelled with `iopbot sessions cancel`: a file that still lists it does not bring it back.
            report.kept_cancelled.append(ps)
            continue
        else:
            timing = ("first_start", "timezone", "rrule", "exdates", "duration_minutes")
            changed = {k for k, v in values.items() if getattr(ps, k) != v}
            if changed:
                for k, v in values.items():
                    setattr(ps, k, v)
                ps.updated_at = now
                if changed & set(timing):
                    await _rule_changed(session, ps, now)
                report.updated.append(ps)
            else:
                report.unchanged.append(ps)
        await _set_attendees(session, ps, spec.participants)
        for change in spec.changes:
            await _apply_change(session, ps, change, now)
    await session.flush()
    result = await cal.plan_reminders(session, settings, now)
    report.reminders_planned = result.added + result.revived + result.retimed
    return report


async def import_calendar(session: AsyncSession, settings: Settings, parsed: Parsed,
                          now: datetime) -> ImportReport | None:
    """All or nothing: check the names, then import only if no line has a problem (else None, and
    `parsed.problems` lists them all, by line)."""
    await check_names(session, parsed)
    if parsed.problems:
        return None
    return await apply_import(session, settings, parsed, now)


async def _set_attendees(session: AsyncSession, ps: ProgramSession, aliases: tuple[str, ...]) -> None:
    ids = set((await session.scalars(select(Participant.id).where(Participant.alias.in_(aliases)))).all()) \
        if aliases else set()
    current = {a.participant_id: a for a in (await session.scalars(
        select(SessionAttendee).where(SessionAttendee.session_id == ps.id))).all()}
    for pid in ids - current.keys():
        session.add(SessionAttendee(session_id=ps.id, participant_id=pid))
    for pid in current.keys() - ids:
        await session.delete(current[pid])


async def _rule_changed(session: AsyncSession, ps: ProgramSession, now: datetime) -> None:
    """The series' timing changed: future occurrences the new rule no longer gives, that nobody
    answered and nobody moved, are removed (their reminders cancelled); the planner adds the new ones."""
    future = (await session.scalars(select(SessionOccurrence).where(
        SessionOccurrence.session_id == ps.id, SessionOccurrence.original_start > now))).unique().all()
    if not future:
        return
    last = max(o.original_start for o in future)
    keep = set(cal.starts_between(ps, now, last + timedelta(seconds=1)))
    answered = set((await session.scalars(select(Attendance.occurrence_id).where(
        Attendance.occurrence_id.in_([o.id for o in future])))).all())
    stale = [o for o in future if o.original_start not in keep and o.moved_at is None and o.id not in answered]
    await cal.cancel_reminders(session, [o.id for o in stale], "session time changed by import")
    if stale:
        await session.execute(delete(SessionOccurrence).where(SessionOccurrence.id.in_([o.id for o in stale])))
    for o in future:
        if o not in stale and o.moved_at is None:
            o.duration_minutes = ps.duration_minutes
            if o.original_start not in keep and o.cancelled_at is None:
                o.cancelled_at = now  # answered by someone: keep the row, as cancelled


async def _apply_change(session: AsyncSession, ps: ProgramSession, change: OccurrenceChange, now: datetime) -> None:
    insert_values = dict(session_id=ps.id, original_start=change.original_start, start_at=change.original_start,
                         duration_minutes=ps.duration_minutes, created_at=now)
    occ = await session.scalar(select(SessionOccurrence).where(
        SessionOccurrence.session_id == ps.id, SessionOccurrence.original_start == change.original_start))
    if occ is None:
        occ = SessionOccurrence(**insert_values)
        session.add(occ)
    if change.cancelled:
        occ.cancelled_at = occ.cancelled_at or now
    else:
        if change.new_start is not None and change.new_start != occ.start_at:
            occ.start_at, occ.moved_at = change.new_start, now
        if change.duration_minutes:
            occ.duration_minutes = change.duration_minutes
    await session.flush()
