"""What a support person writes, after the safety gate assessed it (the gate already sent them the
fixed crisis reply when it was flagged; bot/telegram/safety_gate.py).

- urgent or imminent: an escalation of its own, paged to the participant's care team exactly like
  a participant's (the chain, acknowledgement, outcome), whether it is the support person's own
  crisis or worry about the participant ("she said she wants to end it"); the level is the one the
  safety layer gave. The support person (never the participant) is told once a page was delivered.
- concern: the participant's clinician gets a notice (no page), at most one an hour per person.
- anything they write while an alert of theirs is unresolved is attached to it and passed on.
Their words are stored only in these cases (encrypted at rest), apart from the participant's own
messages; a support person's ordinary messages are not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Escalation
from bot.db.support_models import SupportMessage, SupportPerson
from bot.safety.levels import Assessment, Level
from bot.services.escalation.kinds import SUPPORT_SOURCE
from bot.services.escalation.record import escalate, open_escalation
from bot.services.scheduling.rows import enqueue

CONCERN_KIND = "support_concern"  # a notice to the participant's clinician: no page, no acknowledgement

# Risk the rules found in someone other than the writer: for a support person, the participant.
_ABOUT_SOMEONE_ELSE = ("construct:other_person", "guard:other_person")


def about_participant(assessment: Assessment) -> bool:
    """Whether the words are worry about someone else (the participant) rather than the writer's own."""
    return any(reason.startswith(_ABOUT_SOMEONE_ELSE) for reason in assessment.reasons)


@dataclass(frozen=True)
class SupportFlag:
    message: SupportMessage | None  # None: nothing to keep (not flagged, no alert open)
    escalation: Escalation | None
    new_escalation: bool


async def record_support_text(session: AsyncSession, ctx: AppContext, person: SupportPerson, *, text: str,
                              telegram_message_id: int | None, assessment: Assessment, received_at: datetime,
                              crisis_reply_sent_at: datetime | None) -> SupportFlag:
    """Store a support person's flagged words and page, tell, or attach them (module docstring)."""
    current = await open_escalation(session, person.participant_id, support_person_id=person.id)
    if not assessment.flagged and current is None:
        return SupportFlag(None, None, False)
    message = SupportMessage(
        support_person_id=person.id, participant_id=person.participant_id, telegram_message_id=telegram_message_id,
        received_at=received_at, text=text, level=int(assessment.level),
        categories=",".join(assessment.categories), reasons=",".join(assessment.reasons))
    session.add(message)
    escalation, new = None, False
    if assessment.level >= Level.URGENT or current is not None:
        about = "participant" if about_participant(assessment) else "self"
        escalation, new = await escalate(
            session, ctx, person.participant, assessment, received_at=received_at,
            crisis_reply_sent_at=crisis_reply_sent_at, source=f"{SUPPORT_SOURCE}{about}", follow_up=True,
            support_person_id=person.id)
        message.escalation_id = escalation.id if escalation is not None else None
    else:
        await tell_clinician(session, person, received_at, about_participant(assessment))
    await session.flush()
    return SupportFlag(message, escalation, new)


async def tell_clinician(session: AsyncSession, person: SupportPerson, now: datetime, about: bool, *,
                         reason: str = "message") -> None:
    """A concern notice to the participant's clinician (at most one an hour per support person)."""
    await enqueue(session, kind=CONCERN_KIND, key=f"spc:{person.id}:{now:%Y%m%d%H}", due_at=now,
                  staff_id=person.participant.therapist_id,
                  payload={"support_person_id": person.id, "about": "participant" if about else "self",
                           "reason": reason}, now=now)
