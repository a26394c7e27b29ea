"""What a clinician may see: their own caseload; a lead or admin sees the whole program."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Escalation, EscalationStatus, Participant, Staff


@dataclass(frozen=True)
class CaseloadRow:
    participant_id: int
    alias: str
    status: str
    open_flags: int


def visible_participants(staff: Staff):  # type: ignore[no-untyped-def]
    """The SQL condition for the participants this staff member may see."""
    if staff.is_lead:
        return Participant.id.is_not(None)
    return or_(Participant.therapist_id == staff.id, Participant.backup_id == staff.id)


async def caseload_rows(session: AsyncSession, staff: Staff) -> list[CaseloadRow]:
    open_flags = (
        select(Escalation.participant_id, func.count().label("n"))
        .where(Escalation.status == EscalationStatus.OPEN)
        .group_by(Escalation.participant_id)
        .subquery()
    )
    result = await session.execute(
        select(Participant.id, Participant.alias, Participant.status, func.coalesce(open_flags.c.n, 0))
        .outerjoin(open_flags, open_flags.c.participant_id == Participant.id)
        .where(visible_participants(staff))
        .order_by(Participant.alias)
    )
    return [CaseloadRow(pid, alias, status, int(n)) for pid, alias, status, n in result.all()]
