"""The care team's messages a participant received, and their replies, for their own copy (/mydata).

The sender is named by role only ("coach", "therapist", "care_team"), as the message itself named
them: staff aliases can carry a name, and the participant's export is no place for staff data.
Messages that never reached the participant (queued, or not delivered) are not theirs to have
received, so they are left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import InboundMessage, StaffRole
from bot.db.outreach_models import OutreachMessage, OutreachReply, OutreachStatus

# As the participant saw the sender: a coach, a therapist, or (leads and admins) the care team.
_ROLES = {str(StaffRole.COACH): "coach", str(StaffRole.THERAPIST): "therapist"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def outreach_for_export(session: AsyncSession, participant_id: int) -> list[dict[str, Any]]:
    """Each message the participant received from their care team (oldest first): its words, when it
    came, the sender's role, and the participant's replies (typed words, or "ok" for "I'm OK")."""
    messages = (await session.scalars(select(OutreachMessage).where(
        OutreachMessage.participant_id == participant_id, OutreachMessage.status == OutreachStatus.SENT)
        .order_by(OutreachMessage.sent_at, OutreachMessage.id))).all()
    replies = (await session.execute(
        select(OutreachReply, InboundMessage.text)
        .outerjoin(InboundMessage, InboundMessage.id == OutreachReply.inbound_message_id)
        .where(OutreachReply.participant_id == participant_id)
        .order_by(OutreachReply.received_at, OutreachReply.id))).all()
    return [{"received_at": _iso(m.sent_at), "from": _ROLES.get(m.staff.role, "care_team"), "text": m.text,
             "replies": [{"at": _iso(r.received_at), "kind": r.kind, "text": words}
                         for r, words in replies if r.message_id == m.id]}
            for m in messages]
