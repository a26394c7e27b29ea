"""What a clinician does with an alert: acknowledge it (paging stops, reminders follow until an
outcome), resolve it with an outcome, add a note, reassign it; who may, and which alerts are still
without an outcome."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import (
    UNRESOLVED,
    ActionStatus,
    AlertOutcome,
    Escalation,
    EscalationStatus,
    Participant,
    ScheduledAction,
    Staff,
)
from bot.services.escalation.kinds import (
    ALERT_KIND,
    FOLLOW_UP_KIND,
    PLAN_KIND,
    REASSIGNED,
    UNRESOLVED_STAGE,
    record_event,
)
from bot.services.escalation.paging import plan_turn
from bot.services.scheduling.outbox import enqueue
from bot.services.visibility import visible_participants


async def may_handle(session: AsyncSession, staff: Staff, escalation: Escalation) -> bool:
    """The assigned clinician, the backup, anyone who was paged for it, or a lead/admin."""
    p = escalation.participant
    if staff.is_lead or staff.id in (p.therapist_id, p.backup_id):
        return True
    paged = await session.scalar(
        select(ScheduledAction.id).where(ScheduledAction.escalation_id == escalation.id,
                                         ScheduledAction.kind == ALERT_KIND, ScheduledAction.staff_id == staff.id)
        .limit(1))
    return paged is not None


async def sent_pages(session: AsyncSession, escalation: Escalation) -> list[ScheduledAction]:
    """The alert's messages that reached someone (to show them who took it and how it ended)."""
    return list((await session.scalars(
        select(ScheduledAction).where(ScheduledAction.escalation_id == escalation.id,
                                      ScheduledAction.kind == ALERT_KIND, ScheduledAction.status == ActionStatus.SENT,
                                      ScheduledAction.telegram_message_id.is_not(None))
        .order_by(ScheduledAction.id))).all())


async def acknowledge(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff, *,
                      contacted: bool = False) -> bool:
    """Open → acknowledged by `staff`: paging stops, and reminders follow until an outcome is
    recorded. `contacted`: they also reached the participant. False if it was not open."""
    now = ctx.clock.now()
    if contacted and escalation.status in UNRESOLVED:
        record_event(session, escalation.id, now, "contacted", staff_id=staff.id)
    if escalation.status != EscalationStatus.OPEN:
        return False
    escalation.status = EscalationStatus.ACKNOWLEDGED
    escalation.acknowledged_at = now
    escalation.acknowledged_by_id = staff.id
    record_event(session, escalation.id, now, "acknowledged", staff_id=staff.id)
    await _cancel_pending(session, escalation, (ALERT_KIND, PLAN_KIND), f"acknowledged by staff:{staff.id}")
    await plan_turn(session, ctx, escalation, UNRESOLVED_STAGE, 1,
                    now + timedelta(minutes=ctx.settings.escalation.resolve_reminder_minutes))
    return True


async def resolve(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                  outcome: AlertOutcome) -> bool:
    """Record how the alert ended (acknowledging it first if nobody had). False if it was resolved."""
    if escalation.status not in UNRESOLVED:
        return False
    await acknowledge(session, ctx, escalation, staff)
    now = ctx.clock.now()
    escalation.status = EscalationStatus.RESOLVED
    escalation.resolved_at = now
    escalation.resolved_by_id = staff.id
    escalation.outcome = outcome
    record_event(session, escalation.id, now, "resolved", staff_id=staff.id, detail=str(outcome))
    await _cancel_pending(session, escalation, (ALERT_KIND, PLAN_KIND, FOLLOW_UP_KIND),
                          f"resolved by staff:{staff.id}")
    return True


def add_note(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff, note: str) -> None:
    """The clinician's optional note on how it ended (encrypted at rest like any free text)."""
    escalation.outcome_note = note[:2000]
    record_event(session, escalation.id, ctx.clock.now(), "note", staff_id=staff.id)


async def reassign(session: AsyncSession, ctx: AppContext, escalation: Escalation, to: Staff) -> None:
    """Page another clinician now."""
    now = ctx.clock.now()
    record_event(session, escalation.id, now, "reassigned", staff_id=to.id)
    await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:reassign:{to.id}:{now.isoformat()}",
                  due_at=now, participant_id=escalation.participant_id, staff_id=to.id, escalation_id=escalation.id,
                  payload={"reason": REASSIGNED}, now=now)


async def unresolved_for(session: AsyncSession, staff: Staff) -> list[Escalation]:
    """The alerts without an outcome this staff member may see: unacknowledged first."""
    rows = (await session.scalars(
        select(Escalation).join(Participant, Participant.id == Escalation.participant_id)
        .where(Escalation.status.in_(UNRESOLVED), visible_participants(staff))
        .order_by(Escalation.level.desc(), Escalation.message_received_at))).unique().all()
    return sorted(rows, key=lambda e: e.status != EscalationStatus.OPEN)


async def _cancel_pending(session: AsyncSession, escalation: Escalation, kinds: tuple[str, ...], why: str) -> None:
    rows = await session.scalars(
        select(ScheduledAction).where(ScheduledAction.escalation_id == escalation.id,
                                      ScheduledAction.kind.in_(kinds),
                                      ScheduledAction.status == ActionStatus.PENDING))
    for row in rows:
        row.status = ActionStatus.CANCELLED
        row.last_error = why[:300]
