"""Recording a flag: store a participant's words with their assessment, and open, raise or extend
their escalation (the one place that decides what a new assessment does to it).

A participant can never close a flag: what they write afterwards is attached and passed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import (
    UNRESOLVED,
    ActionStatus,
    Escalation,
    EscalationStatus,
    InboundMessage,
    Participant,
    ScheduledAction,
)
from bot.db.support_models import SupportAlert
from bot.messaging import Replies
from bot.safety.levels import Assessment, Level
from bot.services.escalation.crisis import crisis_reply_text
from bot.services.escalation.kinds import ALERT_KIND, PLAN_KIND, SUPPORT_SOURCE, record_event
from bot.services.escalation.paging import ack_wait, page_holder, page_step, plan_follow_up_notice
from bot.services.inbound import keep_message


@dataclass(frozen=True)
class FlagRecord:
    inbound: InboundMessage
    escalation: Escalation | None
    new_escalation: bool


async def open_escalation(session: AsyncSession, participant_id: int, *, lock: bool = False,
                          support_person_id: int | None = None) -> Escalation | None:
    """The participant's unresolved escalation (open or acknowledged), if any; with
    `support_person_id`, the one that support person's words opened. `lock`: for update
    (PostgreSQL), so that two workers handling two of their messages count both."""
    query = (select(Escalation)
             .where(Escalation.participant_id == participant_id, Escalation.status.in_(UNRESOLVED))
             .order_by(Escalation.id.desc()).limit(1))
    if support_person_id is None:
        query = query.where(Escalation.source.not_like(f"{SUPPORT_SOURCE}%"))
    else:
        query = query.join(SupportAlert, SupportAlert.escalation_id == Escalation.id).where(
            SupportAlert.support_person_id == support_person_id)
    if lock:
        query = query.with_for_update(of=Escalation)
    return await session.scalar(query)


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
    participant writes while an escalation is unresolved is attached to it and passed on.
    """
    inbound = keep_message(session, participant, text=text, telegram_message_id=telegram_message_id,
                           received_at=received_at, assessment=assessment)
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
    support_person_id: int | None = None,
) -> tuple[Escalation | None, bool]:
    """The one place that decides what a new assessment does to a participant's escalation.

    Unresolved escalation: a higher level raises it and pages again at once (the person who
    acknowledged it, or the first one reachable), with the shorter clock; otherwise (when
    `follow_up`) the holder is told the participant wrote again, at most once per interval.
    None: urgent or imminent opens one with its first page. Returns (escalation, new).
    `support_person_id`: a support person's words, about (or on behalf of) `participant`: their own
    escalation, paged to the participant's care team.
    """
    now = ctx.clock.now()
    current = await open_escalation(session, participant.id, lock=True, support_person_id=support_person_id)
    if current is not None:
        if follow_up:
            current.follow_up_count += 1
        current.categories = _merge(current.categories, assessment.categories)
        current.reasons = _merge(current.reasons, assessment.reasons)
        if assessment.level > current.level:
            current.level = int(assessment.level)
            record_event(session, current.id, now, "raised", detail=f"level:{Level(current.level).label}")
            await page_holder(session, ctx, current, participant, now)
            if current.status == EscalationStatus.OPEN:
                sooner = now + ack_wait(ctx, current)
                pending = await session.scalars(
                    select(ScheduledAction).where(ScheduledAction.escalation_id == current.id,
                                                  ScheduledAction.kind.in_([ALERT_KIND, PLAN_KIND]),
                                                  ScheduledAction.status == ActionStatus.PENDING,
                                                  ScheduledAction.due_at > sooner))
                for page in pending:
                    page.due_at = sooner
        elif follow_up:
            await plan_follow_up_notice(session, ctx, current, now)
        return current, False
    if assessment.level < Level.URGENT:
        return None, False
    escalation = Escalation(
        participant_id=participant.id, level=int(assessment.level), categories=",".join(assessment.categories),
        reasons=",".join(assessment.reasons), status=EscalationStatus.OPEN, source=source,
        message_received_at=received_at, crisis_reply_sent_at=crisis_reply_sent_at, created_at=now,
        unreached_in_a_row=0, follow_up_count=0, follow_up_notified=0,
    )
    session.add(escalation)
    await session.flush()
    if support_person_id is not None:
        session.add(SupportAlert(escalation_id=escalation.id, support_person_id=support_person_id))
    record_event(session, escalation.id, now, "opened", detail=f"level:{Level(escalation.level).label}:{source}")
    await page_step(session, ctx, escalation, participant, step=0, due=now)
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

    Urgent or higher: the fixed crisis reply and an escalation with its first page, queued in this
    transaction (the database is up: we are answering a button). "Your care team has been told"
    follows once a page was delivered. Lower levels are stored with the answers by the caller and
    shown in the caseload; nobody is paged.
    """
    if assessment.level < Level.URGENT or participant.chat_id is None:
        return None
    now = ctx.clock.now()
    replies.text(participant.chat_id, crisis_reply_text(ctx, assessment.level, participant.locale), urgent=True)
    escalation, _ = await escalate(session, ctx, participant, assessment, received_at=now,
                                   crisis_reply_sent_at=now, source=source, follow_up=True)
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
    source: str = "message+llm",
) -> tuple[Escalation | None, bool]:
    """A later layer (the LLM, or a late semantic layer) raised a message's level after the rules
    had their say: update the stored message (or store it, if it has not been written yet) and escalate."""
    inbound = await session.scalar(
        select(InboundMessage).where(InboundMessage.participant_id == participant.id,
                                     InboundMessage.telegram_message_id == telegram_message_id))
    if inbound is None:
        inbound = keep_message(session, participant, text=text, telegram_message_id=telegram_message_id,
                               received_at=received_at)
    inbound.level = max(inbound.level or 0, int(assessment.level))
    inbound.categories = _merge(inbound.categories or "", assessment.categories)
    inbound.reasons = _merge(inbound.reasons or "", assessment.reasons)
    escalation, new = await escalate(session, ctx, participant, assessment, received_at=received_at,
                                     crisis_reply_sent_at=crisis_reply_sent_at, source=source,
                                     follow_up=False)
    if escalation is not None:
        inbound.escalation_id = escalation.id
    await session.flush()
    return escalation, new


def _merge(existing: str, more: tuple[str, ...]) -> str:
    return ",".join(dict.fromkeys([c for c in existing.split(",") if c] + list(more)))
