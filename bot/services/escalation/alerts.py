"""Closing the loop on a flag: record it, page until someone takes it, follow it to an outcome.

Open → acknowledged (who, when) → resolved with an outcome (reached and safe, safety plan reviewed,
sent to emergency care, could not reach, false alarm) and an optional note. Every step is a row
with a time (EscalationEvent), and every message about it is a ScheduledAction row, so paging and
reminders survive restarts and no step is sent twice:

- "alert_step" rows page one staff member (key "esc:<id>:step:<n>" walks the chain: assigned
  clinician, backup or on-call, leads, then again, `max_rounds` times). A person who cannot be
  reached (no chat, inactive, blocked the bot, delivery failed) is skipped at once, in the same
  commit, and the next person is paged. A whole chain of people not reached is a coverage failure:
  every lead and admin is paged, and the participant is told plainly where help is.
- "alert_plan" rows plan what comes later: after the last round, every lead and admin, daily,
  until someone acknowledges; an acknowledged alert without an outcome reminds the person who
  acknowledged it, then the leads, then both daily.
- "alert_follow_up" rows tell the holder of the alert that the participant wrote again, at most
  once per `[escalation] follow_up_notice_minutes`, with the count; a higher level pages at once.
- "crisis_line" rows tell the participant "your care team has been told" only after a page was
  delivered, or, when nobody could be reached, the crisis numbers and the after-hours line.

A participant can never close a flag: what they write afterwards is attached and passed on.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.context import AppContext
from bot.db.models import (
    UNRESOLVED,
    ActionStatus,
    AlertOutcome,
    Escalation,
    EscalationEvent,
    EscalationStatus,
    InboundMessage,
    Participant,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.messaging import Keyboard, Messenger, NotDelivered, Replies, Unreachable, keyboard, say
from bot.safety.levels import Assessment, Level
from bot.services.audit import audit, disclose
from bot.services.escalation.crisis import crisis_reply_text, not_reached_text, team_told_text
from bot.services.inbound import keep_message
from bot.services.labels import constructs_text, outcome_text
from bot.services.scheduling.outbox import Delivered, Handled, Skip, enqueue
from bot.services.staff_time import staff_clock_text
from bot.services.visibility import visible_participants

log = logging.getLogger(__name__)

ALERT_KIND = "alert_step"  # one page (or reminder) to one staff member
PLAN_KIND = "alert_plan"  # pages every lead and admin, or reminds; then plans its next turn
FOLLOW_UP_KIND = "alert_follow_up"  # "wrote again", coalesced
CRISIS_LINE_KIND = "crisis_line"  # to the participant: care team told, or nobody reached

# Why a page is sent (payload "reason"); the chain's own pages have none.
CHAIN, RAISED, REASSIGNED, COVERAGE, FINAL, REMINDER = "", "raised", "reassigned", "coverage", "final", "reminder"
# What a plan row plans.
UNACKNOWLEDGED, UNRESOLVED_STAGE = "unack", "unres"

# Outcome buttons: short codes in callback data ("esc:out:<id>:<code>"), in the order shown.
OUTCOME_CODES: dict[str, AlertOutcome] = {
    "safe": AlertOutcome.REACHED_SAFE,
    "plan": AlertOutcome.SAFETY_PLAN,
    "er": AlertOutcome.EMERGENCY_CARE,
    "unreached": AlertOutcome.COULD_NOT_REACH,
    "false": AlertOutcome.FALSE_ALARM,
}


@dataclass(frozen=True)
class FlagRecord:
    inbound: InboundMessage
    escalation: Escalation | None
    new_escalation: bool


def ack_minutes(settings: Settings, level: int) -> float:
    e = settings.escalation
    return e.imminent_ack_minutes if level >= Level.IMMINENT else e.urgent_ack_minutes


def _ack_wait(ctx: AppContext, escalation: Escalation) -> timedelta:
    return timedelta(minutes=ack_minutes(ctx.settings, escalation.level))


def record_event(session: AsyncSession, escalation_id: int, at: datetime, kind: str, *,
                 staff_id: int | None = None, detail: str = "") -> None:
    """One step of an alert, with its time. Codes and ids only, never text."""
    session.add(EscalationEvent(escalation_id=escalation_id, at=at, kind=kind, staff_id=staff_id,
                                detail=detail[:200]))


def unreachable_reason(staff: Staff | None) -> str | None:
    """Why a page to this person cannot be delivered now, or None when it can be tried."""
    if staff is None:
        return "unknown"
    if not staff.active:
        return "inactive"
    if staff.chat_id is None:
        return "no_chat"
    if staff.unreachable_at is not None:
        return "blocked"
    return None


async def open_escalation(session: AsyncSession, participant_id: int, *, lock: bool = False) -> Escalation | None:
    """The participant's unresolved escalation (open or acknowledged), if any. `lock`: for update
    (PostgreSQL), so that two workers handling two of their messages count both."""
    query = (select(Escalation)
             .where(Escalation.participant_id == participant_id, Escalation.status.in_(UNRESOLVED))
             .order_by(Escalation.id.desc()).limit(1))
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
) -> tuple[Escalation | None, bool]:
    """The one place that decides what a new assessment does to a participant's escalation.

    Unresolved escalation: a higher level raises it and pages again at once (the person who
    acknowledged it, or the first one reachable), with the shorter clock; otherwise (when
    `follow_up`) the holder is told the participant wrote again, at most once per interval.
    None: urgent or imminent opens one with its first page. Returns (escalation, new).
    """
    now = ctx.clock.now()
    current = await open_escalation(session, participant.id, lock=True)
    if current is not None:
        if follow_up:
            current.follow_up_count += 1
        current.categories = _merge(current.categories, assessment.categories)
        current.reasons = _merge(current.reasons, assessment.reasons)
        if assessment.level > current.level:
            current.level = int(assessment.level)
            record_event(session, current.id, now, "raised", detail=f"level:{Level(current.level).label}")
            await _page_holder(session, ctx, current, participant, now)
            if current.status == EscalationStatus.OPEN:
                sooner = now + _ack_wait(ctx, current)
                pending = await session.scalars(
                    select(ScheduledAction).where(ScheduledAction.escalation_id == current.id,
                                                  ScheduledAction.kind.in_([ALERT_KIND, PLAN_KIND]),
                                                  ScheduledAction.status == ActionStatus.PENDING,
                                                  ScheduledAction.due_at > sooner))
                for page in pending:
                    page.due_at = sooner
        elif follow_up:
            await _plan_follow_up_notice(session, ctx, current, now)
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
    record_event(session, escalation.id, now, "opened", detail=f"level:{Level(escalation.level).label}:{source}")
    await _page_step(session, ctx, escalation, participant, step=0, due=now)
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
) -> tuple[Escalation | None, bool]:
    """The LLM layer raised a message's level after the rules had their say: update the stored
    message (or store it, if it has not been written yet) and escalate."""
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
                                     crisis_reply_sent_at=crisis_reply_sent_at, source="message+llm",
                                     follow_up=False)
    if escalation is not None:
        inbound.escalation_id = escalation.id
    await session.flush()
    return escalation, new


def _merge(existing: str, more: tuple[str, ...]) -> str:
    return ",".join(dict.fromkeys([c for c in existing.split(",") if c] + list(more)))


# --- who is paged --------------------------------------------------------------------------------

async def leads(session: AsyncSession) -> list[Staff]:
    """The program leads (active); the admins when the program has no lead."""
    found = (await session.scalars(
        select(Staff).where(Staff.role == StaffRole.LEAD, Staff.active.is_(True)).order_by(Staff.id))).all()
    if found:
        return list(found)
    return list((await session.scalars(
        select(Staff).where(Staff.role == StaffRole.ADMIN, Staff.active.is_(True)).order_by(Staff.id))).all())


async def leads_and_admins(session: AsyncSession) -> list[Staff]:
    return list((await session.scalars(
        select(Staff).where(Staff.role.in_([StaffRole.LEAD, StaffRole.ADMIN]), Staff.active.is_(True))
        .order_by(Staff.role.desc(), Staff.id))).all())


async def paging_chain(session: AsyncSession, participant: Participant) -> list[int]:
    """Who is paged, in order: the assigned clinician, the backup (or the program's on-call), the
    leads (the admins if there is no lead). Every lead and admin comes after the last round."""
    chain: list[int] = [participant.therapist_id]
    if participant.backup_id is not None:
        chain.append(participant.backup_id)
    else:
        on_call = (await session.scalars(
            select(Staff.id).where(Staff.on_call.is_(True), Staff.active.is_(True)).order_by(Staff.id))).all()
        chain.extend(on_call)
    chain.extend(s.id for s in await leads(session))
    return list(dict.fromkeys(chain))


async def _page_step(session: AsyncSession, ctx: AppContext, escalation: Escalation, participant: Participant,
                     *, step: int, due: datetime) -> None:
    """Plan the chain's page number `step`. A page due now whose person cannot be reached is
    skipped at once (recorded, with why) and the next person is paged instead, in this
    transaction. After the last round: every lead and admin, then daily, until acknowledged."""
    chain = await paging_chain(session, participant)
    total = len(chain) * ctx.settings.escalation.max_rounds
    now = ctx.clock.now()
    while step < total:
        staff_id = chain[step % len(chain)]
        if due <= now:
            why = unreachable_reason(await session.get(Staff, staff_id))
            if why is not None:
                record_event(session, escalation.id, now, "page_skipped", staff_id=staff_id,
                             detail=f"step:{step}:{why}")
                step += 1
                if await _not_reached(session, ctx, escalation, participant, len(chain)):
                    due = now + _ack_wait(ctx, escalation)  # a whole chain unreached: resume at the usual pace
                continue
        await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:step:{step}", due_at=due,
                      participant_id=participant.id, staff_id=staff_id, escalation_id=escalation.id,
                      payload={"step": step, "reason": CHAIN}, now=now)
        return
    # Every round done: every lead and admin, then daily (unless someone acknowledges first).
    await _plan(session, ctx, escalation, UNACKNOWLEDGED, 1, due)


async def _not_reached(session: AsyncSession, ctx: AppContext, escalation: Escalation, participant: Participant,
                       chain_length: int) -> bool:
    """Count one more person not reached since the last delivered page. Returns True when that
    makes a whole chain of them; the first time, that is a coverage failure: every lead and admin
    is paged and, when none of them can be, the participant is told plainly where help is."""
    escalation.unreached_in_a_row = (escalation.unreached_in_a_row or 0) + 1
    if escalation.unreached_in_a_row % max(1, chain_length):
        return False
    if escalation.nobody_reached_at is None:
        now = ctx.clock.now()
        escalation.nobody_reached_at = now
        record_event(session, escalation.id, now, "coverage_failure", detail=f"unreached:{chain_length}")
        # Also in the audit log, where an operator looks first (`iopbot report alerts` lists them too).
        audit(session, now, "system", f"coverage_failure:escalation:{escalation.id}", participant_id=participant.id)
        log.warning("escalation %s: nobody in participant %s's paging chain could be reached; paging every "
                    "lead and admin", escalation.id, participant.id)
        if not await _page_everyone(session, ctx, escalation, now, key="coverage", reason=COVERAGE):
            await _tell_participant(session, ctx, escalation, "not_reached", now)
    return True


async def _page_everyone(session: AsyncSession, ctx: AppContext, escalation: Escalation, due: datetime, *,
                         key: str, reason: str) -> int:
    """A page to every lead and admin who can be reached. Returns how many were planned."""
    now = ctx.clock.now()
    planned = 0
    for staff in await leads_and_admins(session):
        why = unreachable_reason(staff)
        if why is not None:
            record_event(session, escalation.id, now, "page_skipped", staff_id=staff.id, detail=f"{key}:{why}")
            continue
        planned += await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:{key}:{staff.id}", due_at=due,
                                 participant_id=escalation.participant_id, staff_id=staff.id,
                                 escalation_id=escalation.id, payload={"reason": reason}, now=now)
    return planned


async def _page_holder(session: AsyncSession, ctx: AppContext, escalation: Escalation, participant: Participant,
                       now: datetime) -> None:
    """A higher level: page at once the person who acknowledged it, else the first in the chain who
    can be reached (the chain and the coverage pages are already on it when nobody can)."""
    candidates = [escalation.acknowledged_by_id] if escalation.acknowledged_by_id else []
    for staff_id in dict.fromkeys(candidates + await paging_chain(session, participant)):
        if unreachable_reason(await session.get(Staff, staff_id)) is None:
            await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:raised:{escalation.level}",
                          due_at=now, participant_id=participant.id, staff_id=staff_id,
                          escalation_id=escalation.id, payload={"reason": RAISED}, now=now)
            return


async def _plan(session: AsyncSession, ctx: AppContext, escalation: Escalation, stage: str, turn: int,
                due: datetime) -> None:
    await enqueue(session, kind=PLAN_KIND, key=f"esc:{escalation.id}:plan:{stage}:{turn}", due_at=due,
                  participant_id=escalation.participant_id, escalation_id=escalation.id,
                  payload={"stage": stage, "turn": turn}, now=ctx.clock.now())


async def _tell_participant(session: AsyncSession, ctx: AppContext, escalation: Escalation, line: str,
                            now: datetime) -> None:
    """Queue the participant's line about their alert: "team_told" once a page was delivered (at
    most once), "not_reached" when nobody could be paged (at most once)."""
    if line == "team_told":
        if escalation.team_told_at is not None:
            return
        escalation.team_told_at = now
    await enqueue(session, kind=CRISIS_LINE_KIND, key=f"esc:{escalation.id}:line:{line}", due_at=now,
                  participant_id=escalation.participant_id, escalation_id=escalation.id,
                  payload={"line": line}, now=now)


async def _cancel_pending(session: AsyncSession, escalation: Escalation, kinds: tuple[str, ...], why: str) -> None:
    rows = await session.scalars(
        select(ScheduledAction).where(ScheduledAction.escalation_id == escalation.id,
                                      ScheduledAction.kind.in_(kinds),
                                      ScheduledAction.status == ActionStatus.PENDING))
    for row in rows:
        row.status = ActionStatus.CANCELLED
        row.last_error = why[:300]


# --- follow-ups ------------------------------------------------------------------------------------

async def _plan_follow_up_notice(session: AsyncSession, ctx: AppContext, escalation: Escalation,
                                 now: datetime) -> None:
    """At most one "wrote again" notice per interval: a notice already waiting will count this
    message too; otherwise one is due now, or when the interval since the last one is over."""
    states = set((await session.scalars(
        select(ScheduledAction.status).where(ScheduledAction.escalation_id == escalation.id,
                                             ScheduledAction.kind == FOLLOW_UP_KIND,
                                             ScheduledAction.status.in_([ActionStatus.PENDING,
                                                                         ActionStatus.CLAIMED])))).all())
    if ActionStatus.PENDING in states:
        return
    interval = timedelta(minutes=ctx.settings.escalation.follow_up_notice_minutes)
    last = now if ActionStatus.CLAIMED in states else escalation.follow_up_notice_at  # one is going out now
    due = now if last is None else max(now, last + interval)
    await enqueue(session, kind=FOLLOW_UP_KIND, key=f"esc:{escalation.id}:followup:{escalation.follow_up_count}",
                  due_at=due, participant_id=escalation.participant_id, escalation_id=escalation.id, now=now)


async def holder(session: AsyncSession, escalation: Escalation) -> Staff | None:
    """Who has the alert now: the person who acknowledged it, else the last one a page reached."""
    if escalation.acknowledged_by_id is not None:
        return await session.get(Staff, escalation.acknowledged_by_id)
    staff_id = await session.scalar(
        select(ScheduledAction.staff_id).where(ScheduledAction.escalation_id == escalation.id,
                                               ScheduledAction.kind == ALERT_KIND,
                                               ScheduledAction.status == ActionStatus.SENT)
        .order_by(ScheduledAction.sent_at.desc(), ScheduledAction.id.desc()).limit(1))
    return await session.get(Staff, staff_id) if staff_id else None


async def send_follow_up_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                                row: ScheduledAction) -> Delivered:
    """Tell the holder how many messages the participant wrote since the last notice."""
    escalation = await session.get(Escalation, row.escalation_id) if row.escalation_id else None
    if escalation is None or escalation.status not in UNRESOLVED:
        raise Skip("alert resolved")
    new = escalation.follow_up_count - escalation.follow_up_notified
    if new <= 0:
        raise Skip("no message since the last notice")
    staff = await holder(session, escalation)
    if staff is None or unreachable_reason(staff) is not None:
        # No page has reached anyone yet: the next page says how often they wrote.
        raise Skip("nobody holds the alert yet")
    assert staff.chat_id is not None
    participant = escalation.participant
    text = ctx.t("notice.follow_up", staff.locale, alias=participant.alias, new=new, count=escalation.follow_up_count)
    message = await say(messenger, staff.chat_id, text, urgent=True)
    now = ctx.clock.now()
    escalation.follow_up_notified = escalation.follow_up_count
    escalation.follow_up_notice_at = now
    record_event(session, escalation.id, now, "follow_up_notice", staff_id=staff.id, detail=f"new:{new}")
    disclose(session, now, participant.id, f"staff:{staff.id}", "notice", "follow_up")
    return Delivered(staff.chat_id, message.message_id)


# --- the messages ----------------------------------------------------------------------------------

def alert_keyboard(ctx: AppContext, escalation_id: int, locale: str) -> Keyboard:
    """An alert nobody has acknowledged yet."""
    return keyboard([
        [(ctx.t("alert.ack", locale), f"esc:ack:{escalation_id}"),
         (ctx.t("alert.contacted", locale), f"esc:contacted:{escalation_id}")],
        [(ctx.t("alert.false_alarm", locale), f"esc:false:{escalation_id}"),
         (ctx.t("alert.reassign", locale), f"esc:reassign:{escalation_id}")],
    ])


def outcome_keyboard(ctx: AppContext, escalation_id: int, locale: str) -> Keyboard:
    """How did it end? One button per outcome."""
    return keyboard([[(ctx.t(f"alert.outcome_{outcome}", locale), f"esc:out:{escalation_id}:{code}")]
                     for code, outcome in OUTCOME_CODES.items()])


def keyboard_for(ctx: AppContext, escalation: Escalation, locale: str) -> Keyboard | None:
    if escalation.status == EscalationStatus.OPEN:
        return alert_keyboard(ctx, escalation.id, locale)
    if escalation.status == EscalationStatus.ACKNOWLEDGED:
        return outcome_keyboard(ctx, escalation.id, locale)
    return None


def _role(escalation: Escalation, staff: Staff, reason: str) -> str:
    participant = escalation.participant
    if reason in (COVERAGE, FINAL, REASSIGNED):
        return reason
    if staff.id == participant.therapist_id:
        return "assigned"
    if staff.id == participant.backup_id or staff.on_call or not staff.is_lead:
        return "backup"
    return "lead"


async def alert_text(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                     page: int, reason: str = CHAIN) -> str:
    participant = escalation.participant
    role = _role(escalation, staff, reason)
    categories = ", ".join(c.replace("_", " ") for c in escalation.categories.split(",") if c) or "-"
    text = ctx.t(
        "alert.text", staff.locale, level=Level(escalation.level).label.upper(), alias=participant.alias,
        categories=categories, constructs=constructs_text(ctx, escalation.reasons.split(","), staff.locale),
        received=staff_clock_text(ctx, staff, escalation.message_received_at),
        role=ctx.t(f"alert.role_{role}", staff.locale), step=page,
    )
    if escalation.follow_up_count:
        text += "\n" + ctx.t("alert.follow_ups", staff.locale, count=escalation.follow_up_count)
    if ctx.settings.privacy.quote_in_alerts:
        words = await session.scalar(
            select(InboundMessage.text).where(InboundMessage.escalation_id == escalation.id)
            .order_by(InboundMessage.id).limit(1))
        if words:
            text += "\n\n" + ctx.t("alert.quote", staff.locale, words=words[:500])
    return text


async def page_number(session: AsyncSession, row: ScheduledAction) -> int:
    """The page's place among this alert's pages (1 = the first)."""
    return int(await session.scalar(
        select(func.count()).select_from(ScheduledAction)
        .where(ScheduledAction.escalation_id == row.escalation_id, ScheduledAction.kind == ALERT_KIND,
               ScheduledAction.id <= row.id)) or 1)


async def page_text(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                    row: ScheduledAction) -> str:
    """What this page says: the alert, or (for a reminder) that it still has no outcome."""
    reason = str(row.payload.get("reason", CHAIN))
    if reason == REMINDER:
        acknowledger = (await session.get(Staff, escalation.acknowledged_by_id)
                        if escalation.acknowledged_by_id else None)
        return ctx.t("alert.reminder", staff.locale, level=Level(escalation.level).label.upper(),
                     alias=escalation.participant.alias,
                     who=acknowledger.alias if acknowledger else "-",
                     at=staff_clock_text(ctx, staff, escalation.acknowledged_at or escalation.created_at))
    return await alert_text(session, ctx, escalation, staff, await page_number(session, row), reason)


async def stamps(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff) -> str:
    """Who took the alert and how it ended, in `staff`'s language and time zone."""
    lines = []
    if escalation.acknowledged_at is not None:
        who = await session.get(Staff, escalation.acknowledged_by_id) if escalation.acknowledged_by_id else None
        lines.append(ctx.t("alert.stamp_acknowledged", staff.locale, who=who.alias if who else "-",
                           at=staff_clock_text(ctx, staff, escalation.acknowledged_at)))
    contacted = await session.scalar(
        select(EscalationEvent).where(EscalationEvent.escalation_id == escalation.id,
                                      EscalationEvent.kind == "contacted").order_by(EscalationEvent.id).limit(1))
    if contacted is not None:
        who = await session.get(Staff, contacted.staff_id) if contacted.staff_id else None
        lines.append(ctx.t("alert.stamp_contacted", staff.locale, who=who.alias if who else "-",
                           at=staff_clock_text(ctx, staff, contacted.at)))
    if escalation.resolved_at is not None:
        who = await session.get(Staff, escalation.resolved_by_id) if escalation.resolved_by_id else None
        lines.append(ctx.t("alert.stamp_resolved", staff.locale, who=who.alias if who else "-",
                           at=staff_clock_text(ctx, staff, escalation.resolved_at),
                           outcome=outcome_text(ctx, escalation.outcome, staff.locale)))
    return "\n".join(lines)


# --- sending -----------------------------------------------------------------------------------------

def _still_wanted(escalation: Escalation, reason: str) -> bool:
    if reason in (CHAIN, COVERAGE, FINAL):
        return escalation.status == EscalationStatus.OPEN  # an acknowledgement stops paging
    if reason == REMINDER:
        return escalation.status == EscalationStatus.ACKNOWLEDGED
    return escalation.status in UNRESOLVED


async def send_alert_step(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                          row: ScheduledAction) -> Delivered | Handled:
    """Send one page. Delivered: plan the chain's next page (for when this one goes
    unacknowledged) and, the first time, tell the participant their care team has been told. Not
    deliverable: page the next person at once, in this commit."""
    escalation = await session.get(Escalation, row.escalation_id) if row.escalation_id else None
    reason = str(row.payload.get("reason", CHAIN))
    if escalation is None or not _still_wanted(escalation, reason):
        raise Skip("escalation already handled")
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    why = unreachable_reason(staff)
    if why is not None:
        return await _undeliverable(session, ctx, escalation, row, why)
    assert staff is not None and staff.chat_id is not None
    # Read everything before sending, write after: no SQLite write lock is held across the network call.
    text = await page_text(session, ctx, escalation, staff, row)
    markup = keyboard_for(ctx, escalation, staff.locale)
    paged_at = ctx.clock.now()  # the time to acknowledge runs from here
    try:
        message = await say(messenger, staff.chat_id, text, markup, urgent=True)
    except Unreachable:
        staff.unreachable_at = ctx.clock.now()
        return await _undeliverable(session, ctx, escalation, row, "blocked")
    except NotDelivered:
        # The sender already retried: page the next person now; this page is tried again shortly.
        return await _undeliverable(session, ctx, escalation, row, "delivery_failed", retry=True)
    now = ctx.clock.now()
    escalation.unreached_in_a_row = 0
    if escalation.first_alert_sent_at is None:
        escalation.first_alert_sent_at = now
    record_event(session, escalation.id, now, "reminded" if reason == REMINDER else "paged", staff_id=staff.id,
                 detail=f"{reason or 'step'}:{row.payload.get('step', '')}")
    disclose(session, now, escalation.participant_id, f"staff:{staff.id}", "alert", f"escalation:{escalation.id}")
    told = escalation.team_told_at is None
    await _tell_participant(session, ctx, escalation, "team_told", now)
    # The person may acknowledge the moment the page arrives, before this commit: read the status
    # again under a row lock, so that either their acknowledgement sees the next page (and cancels
    # it) or the next page is not planned at all.
    await session.refresh(escalation, attribute_names=["status"], with_for_update=True)
    if reason == CHAIN and _still_wanted(escalation, reason):
        await _page_step(session, ctx, escalation, escalation.participant, step=int(row.payload.get("step", 0)) + 1,
                         due=paged_at + _ack_wait(ctx, escalation))
    return Delivered(staff.chat_id, message.message_id, wake=told)


async def _undeliverable(session: AsyncSession, ctx: AppContext, escalation: Escalation, row: ScheduledAction,
                         why: str, *, retry: bool = False) -> Handled:
    """This page cannot reach its person: record it and, the first time, move on at once."""
    now = ctx.clock.now()
    kind = "page_failed" if why in ("blocked", "delivery_failed") else "page_skipped"
    first = await session.scalar(
        select(EscalationEvent.id).where(EscalationEvent.escalation_id == escalation.id,
                                         EscalationEvent.detail.like(f"row:{row.id}:%")).limit(1)) is None
    record_event(session, escalation.id, now, kind, staff_id=row.staff_id, detail=f"row:{row.id}:{why}")
    reason = str(row.payload.get("reason", CHAIN))
    if first:
        participant = escalation.participant
        if reason == CHAIN:
            chain = await paging_chain(session, participant)
            whole_chain = await _not_reached(session, ctx, escalation, participant, len(chain))
            await _page_step(session, ctx, escalation, participant, step=int(row.payload.get("step", 0)) + 1,
                             due=now + _ack_wait(ctx, escalation) if whole_chain else now)
        elif escalation.team_told_at is None and escalation.nobody_reached_at is not None:
            others = await session.scalar(
                select(func.count()).select_from(ScheduledAction)
                .where(ScheduledAction.escalation_id == escalation.id, ScheduledAction.kind == ALERT_KIND,
                       ScheduledAction.id != row.id, ScheduledAction.due_at <= now,
                       ScheduledAction.status.in_([ActionStatus.PENDING, ActionStatus.CLAIMED])))
            if not others:  # the last page to every lead and admin failed too
                await _tell_participant(session, ctx, escalation, "not_reached", now)
    status = ActionStatus.CANCELLED if kind == "page_skipped" else ActionStatus.FAILED
    # "blocked by the user" as the outbox writes it for a 403 (bot/services/escalation/coverage.py reads it too).
    note = "blocked by the user" if why == "blocked" else f"not delivered: {why}"
    return Handled(status=status, note=note, retry=retry)


async def run_alert_plan(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction) -> Handled:
    """A planned turn: every lead and admin for an alert still unacknowledged after the last
    round (then daily); or a reminder for an acknowledged alert without an outcome (the person who
    acknowledged it, then the leads, then both daily)."""
    escalation = await session.get(Escalation, row.escalation_id) if row.escalation_id else None
    stage, turn = str(row.payload.get("stage")), int(row.payload.get("turn", 1))
    now = ctx.clock.now()
    if escalation is None:
        raise Skip("no such escalation")
    if stage == UNACKNOWLEDGED:
        if escalation.status != EscalationStatus.OPEN:
            raise Skip("acknowledged")
        planned = await _page_everyone(session, ctx, escalation, now, key=f"final:{turn}", reason=FINAL)
        record_event(session, escalation.id, now, "everyone_paged", detail=f"turn:{turn}:pages:{planned}")
        await _plan(session, ctx, escalation, UNACKNOWLEDGED, turn + 1, now + timedelta(days=1))
        return Handled(status=ActionStatus.SENT, note=f"paged {planned} leads and admins")
    if escalation.status != EscalationStatus.ACKNOWLEDGED:
        raise Skip("resolved")
    recipients: list[Staff] = []
    acknowledger = await session.get(Staff, escalation.acknowledged_by_id) if escalation.acknowledged_by_id else None
    if turn != 2 and acknowledger is not None:
        recipients.append(acknowledger)
    if turn >= 2:
        recipients += await leads(session)
    planned = 0
    for staff in dict.fromkeys(recipients):
        why = unreachable_reason(staff)
        if why is not None:
            record_event(session, escalation.id, now, "page_skipped", staff_id=staff.id, detail=f"remind:{why}")
            continue
        planned += await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:remind:{turn}:{staff.id}",
                                 due_at=now, participant_id=escalation.participant_id, staff_id=staff.id,
                                 escalation_id=escalation.id, payload={"reason": REMINDER}, now=now)
    record_event(session, escalation.id, now, "reminder_due", detail=f"turn:{turn}:pages:{planned}")
    wait = timedelta(minutes=ctx.settings.escalation.resolve_reminder_minutes) if turn == 1 else timedelta(days=1)
    await _plan(session, ctx, escalation, UNRESOLVED_STAGE, turn + 1, now + wait)
    return Handled(status=ActionStatus.SENT, note=f"reminded {planned}")


async def send_crisis_line(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                           row: ScheduledAction) -> Delivered:
    """The participant's line about their alert: told, or nobody reached (then where help is)."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or participant.chat_id is None:
        raise Skip("participant has no chat")
    line = str(row.payload.get("line"))
    text = team_told_text(ctx, participant.locale) if line == "team_told" else not_reached_text(
        ctx, participant.locale)
    message = await say(messenger, participant.chat_id, text, urgent=True)
    if row.escalation_id:
        record_event(session, row.escalation_id, ctx.clock.now(), f"participant_{line}")
    return Delivered(participant.chat_id, message.message_id)


# --- deciding ------------------------------------------------------------------------------------------

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
    await _plan(session, ctx, escalation, UNRESOLVED_STAGE, 1,
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


# --- figures ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResponseTimes:
    count: int
    acknowledged: int
    to_alert_median: float | None
    to_alert_p95: float | None
    to_ack_median: float | None
    to_ack_p95: float | None
    resolved: int = 0
    to_resolution_median: float | None = None
    to_resolution_p95: float | None = None
    open: int = 0  # nobody acknowledged yet
    awaiting_outcome: int = 0  # acknowledged, no outcome yet
    outcomes: dict[str, int] = field(default_factory=dict)
    coverage_failures: tuple[tuple[int, str, datetime], ...] = ()  # (escalation id, alias, when)


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


async def response_times(session: AsyncSession, since: datetime | None = None) -> ResponseTimes:
    """Seconds from the flagged message to the first alert, to the acknowledgement and to the
    outcome; how the alerts ended; and every coverage failure (nobody in the chain reached)."""
    query = select(Escalation)
    if since is not None:
        query = query.where(Escalation.message_received_at >= since)
    rows = (await session.scalars(query)).unique().all()
    to_alert = [(r.first_alert_sent_at - r.message_received_at).total_seconds() for r in rows if r.first_alert_sent_at]
    to_ack = [(r.acknowledged_at - r.message_received_at).total_seconds() for r in rows if r.acknowledged_at]
    to_resolution = [(r.resolved_at - r.message_received_at).total_seconds() for r in rows
                     if r.resolved_at and r.outcome not in (AlertOutcome.NOT_RECORDED, AlertOutcome.CONTACTED)]
    return ResponseTimes(
        count=len(rows), acknowledged=len(to_ack),
        to_alert_median=statistics.median(to_alert) if to_alert else None, to_alert_p95=_p95(to_alert),
        to_ack_median=statistics.median(to_ack) if to_ack else None, to_ack_p95=_p95(to_ack),
        resolved=sum(1 for r in rows if r.status == EscalationStatus.RESOLVED),
        to_resolution_median=statistics.median(to_resolution) if to_resolution else None,
        to_resolution_p95=_p95(to_resolution),
        open=sum(1 for r in rows if r.status == EscalationStatus.OPEN),
        awaiting_outcome=sum(1 for r in rows if r.status == EscalationStatus.ACKNOWLEDGED),
        outcomes=dict(Counter(r.outcome for r in rows if r.outcome).most_common()),
        coverage_failures=tuple((r.id, r.participant.alias, r.nobody_reached_at)
                                for r in sorted(rows, key=lambda r: r.id) if r.nobody_reached_at),
    )


def format_report(times: ResponseTimes, period: str) -> str:
    """`iopbot report alerts`: the figures above as lines for an operator."""

    def fmt(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        if seconds < 120:
            return f"{seconds:.1f} s"
        return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"

    lines = [
        f"safety alerts ({period}): {times.count} escalations, {times.acknowledged} acknowledged, "
        f"{times.resolved} resolved; now unacknowledged: {times.open}, acknowledged without an outcome: "
        f"{times.awaiting_outcome}",
        f"  flagged message -> first clinician alert:  median {fmt(times.to_alert_median)}, "
        f"p95 {fmt(times.to_alert_p95)}",
        f"  flagged message -> acknowledgement:        median {fmt(times.to_ack_median)}, "
        f"p95 {fmt(times.to_ack_p95)}",
        f"  flagged message -> outcome recorded:       median {fmt(times.to_resolution_median)}, "
        f"p95 {fmt(times.to_resolution_p95)}",
        "  outcomes: " + (", ".join(f"{name} {n}" for name, n in times.outcomes.items()) or "none yet"),
        f"  coverage failures (nobody in the paging chain could be reached): {len(times.coverage_failures)}",
    ]
    lines += [f"    escalation {eid} ({alias}) at {at:%Y-%m-%d %H:%M} UTC"
              for eid, alias, at in times.coverage_failures]
    return "\n".join(lines)
