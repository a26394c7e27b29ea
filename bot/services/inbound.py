"""Storing what a participant writes: one row per message, with its assessment when it had one.

A flagged message (or any message while an alert is open) is stored by the safety layer with its
escalation (bot/services/escalation/record.py `record_message`); any other text that no dialog took is
kept as a note for the care team (the fallback handler). Both come here, so a message is stored
the same way whoever stores it. Text is encrypted at rest when a data key is set (bot/db/types.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import InboundMessage, Participant
from bot.safety.levels import Assessment


def keep_message(session: AsyncSession, participant: Participant, *, text: str, telegram_message_id: int | None,
                 received_at: datetime, assessment: Assessment | None = None) -> InboundMessage:
    inbound = InboundMessage(participant_id=participant.id, telegram_message_id=telegram_message_id,
                             received_at=received_at, text=text)
    if assessment is not None:
        inbound.level = int(assessment.level)
        inbound.categories = ",".join(assessment.categories)
        inbound.reasons = ",".join(assessment.reasons)
    session.add(inbound)
    return inbound
