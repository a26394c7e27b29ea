"""Who on the care team may see whom: a lead sees every participant; a clinician, the people
they are the therapist or backup of. Caseload, charts, alerts and /reach all ask here."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Participant, Staff


def visible_participants(staff: Staff) -> ColumnElement[bool]:
    """The SQL condition for the participants this staff member may see."""
    if staff.is_lead:
        return Participant.id.is_not(None)
    return or_(Participant.therapist_id == staff.id, Participant.backup_id == staff.id)


async def may_see(session: AsyncSession, staff: Staff, participant: Participant) -> bool:
    found = await session.scalar(
        select(Participant.id).where(Participant.id == participant.id, visible_participants(staff)))
    return found is not None


EXAMPLE_ALIAS = "P-101"  # for a usage hint when the staff member sees nobody yet


async def example_alias(session: AsyncSession, staff: Staff) -> str:
    """An alias from this staff member's own caseload for a usage hint, so it can be copied."""
    alias = await session.scalar(select(Participant.alias).where(visible_participants(staff))
                                 .order_by(Participant.alias).limit(1))
    return alias or EXAMPLE_ALIAS
