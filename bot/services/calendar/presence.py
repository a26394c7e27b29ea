"""Who was at a session, as the facilitator marks it from the brief ("sessions attended").

What a participant said beforehand (Attendance: attending / can't attend) and whether they were
there (SessionPresence) are different facts; only the mark counts as attended. A mark can be
changed or cleared; each change is audited with the staff member who made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.calendar_models import Attendance, AttendanceStatus, SessionOccurrence, SessionPresence
from bot.db.models import Participant, Staff
from bot.services.audit import actor_label, audit
from bot.services.calendar import occurrences as cal
from bot.services.visibility import may_see


@dataclass(frozen=True)
class RosterEntry:
    participant_id: int
    alias: str
    present: bool | None  # None: not marked yet
    said_cant_attend: bool


async def roster(session: AsyncSession, occ: SessionOccurrence) -> list[RosterEntry]:
    """The participants an occurrence is for, by alias, with their marks and what they said."""
    ids = sorted((await cal.audience(session, [occ.session_id])).get(occ.session_id, set()))
    if not ids:
        return []
    aliases = dict((await session.execute(
        select(Participant.id, Participant.alias).where(Participant.id.in_(ids)))).all())
    marks = dict((await session.execute(
        select(SessionPresence.participant_id, SessionPresence.present)
        .where(SessionPresence.occurrence_id == occ.id))).all())
    cant = set((await session.scalars(
        select(Attendance.participant_id).where(Attendance.occurrence_id == occ.id,
                                                Attendance.status == AttendanceStatus.CANT_ATTEND))).all())
    return sorted((RosterEntry(pid, aliases[pid], marks.get(pid), pid in cant) for pid in ids if pid in aliases),
                  key=lambda e: e.alias.casefold())


async def may_mark(session: AsyncSession, staff: Staff, occ: SessionOccurrence, participant: Participant) -> bool:
    """The session's facilitator, or staff who may see the participant (their clinicians, leads);
    only for a participant the session is for."""
    if not await cal.is_for(session, occ, participant.id):
        return False
    return occ.session.facilitator_id == staff.id or await may_see(session, staff, participant)


def next_mark(current: bool | None) -> bool | None:
    """One button cycles: not marked → was there → was not there → not marked."""
    return True if current is None else (False if current else None)


async def mark(session: AsyncSession, occ: SessionOccurrence, participant: Participant, present: bool | None,
               staff: Staff, now: datetime) -> None:
    """Record (or clear, with None) whether the participant was at the occurrence."""
    row = await session.scalar(select(SessionPresence).where(SessionPresence.occurrence_id == occ.id,
                                                             SessionPresence.participant_id == participant.id))
    if present is None:
        if row is not None:
            await session.execute(delete(SessionPresence).where(SessionPresence.id == row.id))
    elif row is None:
        session.add(SessionPresence(occurrence_id=occ.id, participant_id=participant.id, present=present,
                                    marked_by=staff.id, marked_at=now))
    else:
        row.present, row.marked_by, row.marked_at = present, staff.id, now
    what = {True: "present", False: "absent", None: "cleared"}[present]
    audit(session, now, actor_label(staff), f"attendance:{what}:occurrence:{occ.id}", participant_id=participant.id)
