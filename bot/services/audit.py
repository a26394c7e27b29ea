"""The audit log and the disclosure log (42 CFR Part 2). Ids only, never content."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditEntry, Disclosure, Participant, Staff


def actor_label(actor: Staff | Participant | None, telegram_user_id: int | None = None) -> str:
    if isinstance(actor, Staff):
        return f"staff:{actor.id}"
    if isinstance(actor, Participant):
        return f"participant:{actor.id}"
    return f"telegram:{telegram_user_id}"


def audit(
    session: AsyncSession,
    now: datetime,
    actor: str,
    action: str,
    *,
    participant_id: int | None = None,
    allowed: bool = True,
) -> None:
    session.add(AuditEntry(at=now, actor=actor, action=action[:80], participant_id=participant_id, allowed=allowed))


def disclose(
    session: AsyncSession, now: datetime, participant_id: int, recipient: str, kind: str, reference: str = ""
) -> None:
    session.add(Disclosure(at=now, participant_id=participant_id, recipient=recipient, kind=kind, reference=reference))
