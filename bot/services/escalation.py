"""Closing the loop on a flag: record it, page the clinician, then the backup, then the lead.

Every page is a ScheduledAction row (kind "alert_step", key "esc:<id>:step:<n>"), so paging
survives restarts and no step is sent twice. An acknowledgement stops further paging. A
participant can never close a flag: what they write afterwards is attached and passed on.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.models import (
    ActionStatus,
    Escalation,
    EscalationStatus,
    InboundMessage,
    Participant,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.safety.levels import Assessment, Level, describe_constructs
from bot.services.audit import disclose
from bot.services.context import AppContext
from bot.services.outbox import Delivered, Skip, enqueue
from bot.telegram.keyboards import keyboard
from bot.telegram.replies import Replies
from bot.telegram.sender import urgent_sending

ALERT_KIND = "alert_step"
# Step numbers: 0, 1, 2… walk the regular chain (clinician, backup, leads, then again);
# 100+n is an extra page to the clinician when a follow-up raised the level; they never collide.


@dataclass(frozen=True)
class FlagRecord:
    inbound: InboundMessage
    escalation: Escalation | None
    new_escalation: bool


def ack_minutes(settings: Settings, level: int) -> float:
    e = settings.escalation
    return e.imminent_ack_minutes if level >= Level.IMMINENT else e.urgent_ack_minutes


async def open_escalation(session: AsyncSession, participant_id: int) -> Escalation | None:
    return await session.scalar(
        select(Escalation)
        .where(Escalation.participant_id == participant_id, Escalation.status == EscalationStatus.OPEN)
        .order_by(Escalation.id.desc())
        .limit(1)
    )


async def record_message(
    session: AsyncSession,
    ctx: AppContext,
    participant: Participant,
    *,
    text: str,
    telegram_message_id: int | None,
    assessment: Assessment,
    received_at: datetime,
    crisis_reply_sent_at: datetime | None,
    source: str = "message",
) -> FlagRecord:
    """Store a participant's words with their assessment; open or extend an escalation.

    Urgent and imminent open an escalation and its first page, in this transaction. Anything the
    participant writes while an escalation is open is attached to it and passed to the clinician.
    """
    inbound = InboundMessage(
        participant_id=participant.id, telegram_message_id=telegram_message_id, received_at=received_at,
        text=text, level=int(assessment.level), categories=",".join(assessment.categories),
        reasons=",".join(assessment.reasons),
    )
    session.add(inbound)
    escalation, new = await escalate(session, ctx, participant, assessment, received_at=received_at,
                                     crisis_reply_sent_at=crisis_reply_sent_at, source=source, follow_up=True)
    inbound.escalation_id = escalation.id if escalation else None
    await session.flush()
    return FlagRecord(inbound, escalation, new_escalation=new)


async def escalate(
    session: AsyncSession,
    ctx: AppContext,
    participant: Participant,
    assessment: Assessment,
    *,
    received_at: datetime,
    crisis_reply_sent_at: datetime | None,
    source: str,
    follow_up: bool,
) -> tuple[Escalation | None, bool]:
    """The one place that decides what a new assessment does to a participant's escalation.

    Open escalation: a higher level raises it and pages the clinician again at once, with the
    shorter clock; otherwise (when `follow_up`) the clinician is told the participant wrote again.
    No open escalation: urgent or imminent opens one with its first page. Returns (escalation, new).
    """
    now = ctx.clock.now()
    current = await open_escalation(session, participant.id)
    if current is not None:
        if follow_up:
            current.follow_up_count += 1
        current.categories = _merge(current.categories, assessment.categories)
        current.reasons = _merge(current.reasons, assessment.reasons)
        if assessment.level > current.level:
            current.level = int(assessment.level)
            # Extra pages are numbered 100+ so they never collide with the regular chain's steps.
            step = 100 + current.follow_up_count + (0 if follow_up else 50)
            await _schedule_step(session, ctx, current, participant, step=step, due=now, reason="raised",
                                 staff_id=participant.therapist_id)
            sooner = now + timedelta(minutes=ack_minutes(ctx.settings, current.level))
            pending = await session.scalars(
                select(ScheduledAction).where(ScheduledAction.escalation_id == current.id,
                                              ScheduledAction.kind == ALERT_KIND,
                                              ScheduledAction.status == ActionStatus.PENDING,
                                              ScheduledAction.due_at > sooner))
            for page in pending:
                page.due_at = sooner
        elif follow_up:
            await enqueue(session, kind="staff_notice", key=f"esc:{current.id}:followup:{current.follow_up_count}",
                          due_at=now, participant_id=participant.id, staff_id=participant.therapist_id,
                          escalation_id=current.id, payload={"notice": "follow_up", "count": current.follow_up_count},
                          now=now)
        return current, False
    if assessment.level < Level.URGENT:
        return None, False
    escalation = Escalation(
        participant_id=participant.id, level=int(assessment.level), categories=",".join(assessment.categories),
        reasons=",".join(assessment.reasons), status=EscalationStatus.OPEN, source=source,
        message_received_at=received_at, crisis_reply_sent_at=crisis_reply_sent_at, created_at=now,
    )
    session.add(escalation)
    await session.flush()
    await _schedule_step(session, ctx, escalation, participant, step=0, due=now)
    return escalation, True


async def flag_from_answers(
    session: AsyncSession,
    ctx: AppContext,
    participant: Participant,
    assessment: Assessment,
    *,
    source: str,
    replies: Replies,
) -> Escalation | None:
    """A structured trigger fired (check-in safety question, PHQ-9 item 9, thresholds).

    Urgent or higher: the fixed crisis reply, an escalation with its first page, and the care-team
    line, all queued in this transaction (the database is up: we are answering a button). Lower
    levels are stored with the answers by the caller and shown in the caseload; nobody is paged.
    """
    from bot.safety.gate import crisis_reply_text

    if assessment.level < Level.URGENT or participant.chat_id is None:
        return None
    now = ctx.clock.now()
    replies.text(participant.chat_id, crisis_reply_text(ctx, assessment.level, participant.locale), urgent=True)
    escalation, new = await escalate(session, ctx, participant, assessment, received_at=now,
                                     crisis_reply_sent_at=now, source=source, follow_up=True)
    if new:
        replies.text(participant.chat_id, ctx.t("crisis.team_told", participant.locale), urgent=True)
    replies.outbox_due = True
    return escalation


async def raise_after_second_opinion(
    session: AsyncSession,
    ctx: AppContext,
    participant: Participant,
    *,
    text: str,
    telegram_message_id: int,
    assessment: Assessment,
    received_at: datetime,
    crisis_reply_sent_at: datetime | None,
) -> tuple[Escalation | None, bool]:
    """The LLM layer raised a message's level after the rules had their say: update the stored
    message (or store it, if it has not been written yet) and escalate."""
    inbound = await session.scalar(
        select(InboundMessage).where(InboundMessage.participant_id == participant.id,
                                     InboundMessage.telegram_message_id == telegram_message_id))
    if inbound is None:
        inbound = InboundMessage(participant_id=participant.id, telegram_message_id=telegram_message_id,
                                 received_at=received_at, text=text)
        session.add(inbound)
    inbound.level = max(inbound.level or 0, int(assessment.level))
    inbound.categories = _merge(inbound.categories or "", assessment.categories)
    inbound.reasons = _merge(inbound.reasons or "", assessment.reasons)
    escalation, new = await escalate(session, ctx, participant, assessment, received_at=received_at,
                                     crisis_reply_sent_at=crisis_reply_sent_at, source="message+llm",
                                     follow_up=False)
    if escalation is not None:
        inbound.escalation_id = escalation.id
    await session.flush()
    return escalation, new


def _merge(existing: str, more: tuple[str, ...]) -> str:
    return ",".join(dict.fromkeys([c for c in existing.split(",") if c] + list(more)))


async def paging_chain(session: AsyncSession, participant: Participant) -> list[int]:
    """Who is paged, in order: the assigned clinician, the backup (or the program's on-call), the leads."""
    chain: list[int] = [participant.therapist_id]
    if participant.backup_id is not None:
        chain.append(participant.backup_id)
    else:
        on_call = (await session.scalars(
            select(Staff.id).where(Staff.on_call.is_(True), Staff.active.is_(True)).order_by(Staff.id))).all()
        chain.extend(on_call)
    leads = (await session.scalars(
        select(Staff.id).where(Staff.role.in_([StaffRole.LEAD, StaffRole.ADMIN]), Staff.active.is_(True))
        .order_by(Staff.role.desc(), Staff.id))).all()
    chain.extend(leads)
    return list(dict.fromkeys(chain))


async def _schedule_step(session: AsyncSession, ctx: AppContext, escalation: Escalation, participant: Participant,
                         *, step: int, due: datetime, reason: str = "", staff_id: int | None = None) -> None:
    chain = await paging_chain(session, participant)
    if staff_id is None:
        rounds = ctx.settings.escalation.max_rounds
        index = step % 100
        if index >= len(chain) * rounds:
            return  # every round done; the escalation stays open and visible in /alerts
        staff_id = chain[index % len(chain)]
    await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:step:{step}", due_at=due,
                  participant_id=participant.id, staff_id=staff_id, escalation_id=escalation.id,
                  payload={"step": step, "reason": reason}, now=ctx.clock.now())


def alert_keyboard(ctx: AppContext, escalation_id: int, locale: str) -> InlineKeyboardMarkup:
    return keyboard([
        [(ctx.t("alert.ack", locale), f"esc:ack:{escalation_id}"),
         (ctx.t("alert.contacted", locale), f"esc:contacted:{escalation_id}")],
        [(ctx.t("alert.false_alarm", locale), f"esc:false:{escalation_id}"),
         (ctx.t("alert.reassign", locale), f"esc:reassign:{escalation_id}")],
    ])


async def alert_text(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                     step: int) -> str:
    participant = escalation.participant
    role = "assigned" if staff.id == participant.therapist_id else "backup"
    categories = ", ".join(c.replace("_", " ") for c in escalation.categories.split(",") if c) or "-"
    text = ctx.t(
        "alert.text", staff.locale, level=Level(escalation.level).label.upper(), alias=participant.alias,
        categories=categories, constructs=describe_constructs(escalation.reasons.split(",")) or "-",
        received=f"{escalation.message_received_at:%Y-%m-%d %H:%M} UTC",
        role=ctx.t(f"alert.role_{role}", staff.locale), step=step + 1,
    )
    if ctx.settings.privacy.quote_in_alerts:
        words = await session.scalar(
            select(InboundMessage.text).where(InboundMessage.escalation_id == escalation.id)
            .order_by(InboundMessage.id).limit(1))
        if words:
            text += "\n\n" + ctx.t("alert.quote", staff.locale, words=words[:500])
    return text


async def send_alert_step(ctx: AppContext, bot: Bot, session: AsyncSession, row: ScheduledAction) -> Delivered:
    """Send one page, and schedule the next one for when this one goes unacknowledged."""
    escalation = await session.get(Escalation, row.escalation_id)
    if escalation is None or escalation.status != EscalationStatus.OPEN:
        raise Skip("escalation already handled")
    participant = escalation.participant
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    step = int(row.payload.get("step", 0))
    now = ctx.clock.now()
    if step < 100 and not row.payload.get("reassigned"):
        # Schedule the next page first: it is cancelled by an acknowledgement, and if this send
        # fails for good the chain still moves on.
        await _schedule_step(session, ctx, escalation, participant, step=step + 1,
                             due=now + timedelta(minutes=ack_minutes(ctx.settings, escalation.level)))
    if staff is None or staff.chat_id is None or not staff.active:
        if step < 100:
            # Nobody to reach at this step: go straight on to the next person.
            await _schedule_step(session, ctx, escalation, participant, step=step + 1, due=now)
        raise Skip("staff member has no Telegram chat yet")
    text = await alert_text(session, ctx, escalation, staff, step)
    try:
        with urgent_sending():
            message = await bot.send_message(staff.chat_id, text,
                                             reply_markup=alert_keyboard(ctx, escalation.id, staff.locale))
    except TelegramAPIError:
        # This person cannot be reached now (blocked the bot, Telegram failing after the sender's
        # retries). The row's transaction, with the next page in it, is rolled back by the outbox:
        # page the next person at once, in a transaction of its own. This row is retried as usual.
        if step < 100 and not row.payload.get("reassigned"):
            escalation_id, participant_id = escalation.id, participant.id
            await session.rollback()  # SQLite: give up this transaction's write lock first
            async with ctx.sessionmaker() as own:
                escalation = await own.get(Escalation, escalation_id)
                participant = await own.get(Participant, participant_id)
                if escalation is not None and participant is not None and escalation.status == EscalationStatus.OPEN:
                    await _schedule_step(own, ctx, escalation, participant, step=step + 1, due=ctx.clock.now(),
                                         reason="previous page undeliverable")
                    await own.commit()
                    ctx.wake_outbox()
        raise
    sent = ctx.clock.now()
    if escalation.first_alert_sent_at is None:
        escalation.first_alert_sent_at = sent
    disclose(session, sent, participant.id, f"staff:{staff.id}", "alert", f"escalation:{escalation.id}")
    return Delivered(staff.chat_id, message.message_id)


class AlertDecisionError(Exception):
    pass


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


async def decide(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                 decision: EscalationStatus) -> list[ScheduledAction]:
    """Acknowledge, contacted, or false alarm: stops paging. Returns the alert messages to update."""
    now = ctx.clock.now()
    escalation.status = decision
    if escalation.acknowledged_at is None:
        escalation.acknowledged_at = now
        escalation.acknowledged_by_id = staff.id
    pages = (await session.scalars(
        select(ScheduledAction).where(ScheduledAction.escalation_id == escalation.id,
                                      ScheduledAction.kind == ALERT_KIND))).all()
    for page in pages:
        if page.status == ActionStatus.PENDING:
            page.status = ActionStatus.CANCELLED
            page.last_error = f"{decision} by staff:{staff.id}"
    return [p for p in pages if p.status == ActionStatus.SENT and p.telegram_message_id]


async def reassign(session: AsyncSession, ctx: AppContext, escalation: Escalation, to: Staff) -> None:
    """Page another clinician now; the paging clock starts again from them."""
    now = ctx.clock.now()
    await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:reassign:{to.id}:{now.isoformat()}",
                  due_at=now,
                  participant_id=escalation.participant_id, staff_id=to.id, escalation_id=escalation.id,
                  payload={"step": 100, "reassigned": True}, now=now)


async def open_escalations_for(session: AsyncSession, staff: Staff) -> list[Escalation]:
    from bot.services.caseload import visible_participants

    return list((await session.scalars(
        select(Escalation).join(Participant, Participant.id == Escalation.participant_id)
        .where(Escalation.status == EscalationStatus.OPEN, visible_participants(staff))
        .order_by(Escalation.level.desc(), Escalation.message_received_at))).unique().all())


@dataclass(frozen=True)
class ResponseTimes:
    count: int
    acknowledged: int
    to_alert_median: float | None
    to_alert_p95: float | None
    to_ack_median: float | None
    to_ack_p95: float | None


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered) + 0.5)) - 1))]


async def response_times(session: AsyncSession, since: datetime | None = None) -> ResponseTimes:
    """Seconds from the flagged message to the first alert, and to the acknowledgement."""
    query = select(Escalation)
    if since is not None:
        query = query.where(Escalation.message_received_at >= since)
    rows = (await session.scalars(query)).unique().all()
    to_alert = [(r.first_alert_sent_at - r.message_received_at).total_seconds() for r in rows if r.first_alert_sent_at]
    to_ack = [(r.acknowledged_at - r.message_received_at).total_seconds() for r in rows if r.acknowledged_at]
    return ResponseTimes(
        count=len(rows), acknowledged=len(to_ack),
        to_alert_median=statistics.median(to_alert) if to_alert else None, to_alert_p95=_p95(to_alert),
        to_ack_median=statistics.median(to_ack) if to_ack else None, to_ack_p95=_p95(to_ack),
    )
