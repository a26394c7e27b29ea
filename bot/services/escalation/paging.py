"""The paging chain and its senders: who is paged and in what order, and every row that pages,
reminds, tells the holder the participant wrote again, or gives the participant their line.

Closing the loop on a flag: record it, page until someone takes it, follow it to an outcome.

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
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.context import AppContext
from bot.db.models import (
    UNRESOLVED,
    ActionStatus,
    Escalation,
    EscalationEvent,
    EscalationStatus,
    Participant,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.db.support_models import SupportAlert, SupportPerson
from bot.messaging import Messenger, NotDelivered, Unreachable, say
from bot.safety.levels import Level
from bot.services.audit import audit, disclose
from bot.services.escalation.crisis import (
    not_reached_text,
    support_not_reached_text,
    support_team_told_text,
    team_told_text,
)
from bot.services.escalation.kinds import (
    ALERT_KIND,
    CHAIN,
    COVERAGE,
    CRISIS_LINE_KIND,
    FINAL,
    FOLLOW_UP_KIND,
    PLAN_KIND,
    RAISED,
    REMINDER,
    SUPPORT_SOURCE,
    UNACKNOWLEDGED,
    UNRESOLVED_STAGE,
    record_event,
)
from bot.services.escalation.pages import keyboard_for, page_text
from bot.services.scheduling.outbox import Delivered, Handled, Skip, enqueue

log = logging.getLogger(__name__)


def ack_minutes(settings: Settings, level: int) -> float:
    e = settings.escalation
    return e.imminent_ack_minutes if level >= Level.IMMINENT else e.urgent_ack_minutes


def ack_wait(ctx: AppContext, escalation: Escalation) -> timedelta:
    return timedelta(minutes=ack_minutes(ctx.settings, escalation.level))


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


async def page_step(session: AsyncSession, ctx: AppContext, escalation: Escalation, participant: Participant,
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
                    due = now + ack_wait(ctx, escalation)  # a whole chain unreached: resume at the usual pace
                continue
        await enqueue(session, kind=ALERT_KIND, key=f"esc:{escalation.id}:step:{step}", due_at=due,
                      participant_id=participant.id, staff_id=staff_id, escalation_id=escalation.id,
                      payload={"step": step, "reason": CHAIN}, now=now)
        return
    # Every round done: every lead and admin, then daily (unless someone acknowledges first).
    await plan_turn(session, ctx, escalation, UNACKNOWLEDGED, 1, due)


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


async def page_holder(session: AsyncSession, ctx: AppContext, escalation: Escalation, participant: Participant,
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


async def plan_turn(session: AsyncSession, ctx: AppContext, escalation: Escalation, stage: str, turn: int,
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
    # A support person's alert: the line goes to them (send_crisis_line), never to the participant.
    by_support_person = escalation.source.startswith(SUPPORT_SOURCE)
    await enqueue(session, kind=CRISIS_LINE_KIND, key=f"esc:{escalation.id}:line:{line}", due_at=now,
                  participant_id=None if by_support_person else escalation.participant_id,
                  escalation_id=escalation.id, payload={"line": line}, now=now)



# --- follow-ups ------------------------------------------------------------------------------------

async def plan_follow_up_notice(session: AsyncSession, ctx: AppContext, escalation: Escalation,
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
    key = "support.follow_up" if escalation.source.startswith(SUPPORT_SOURCE) else "notice.follow_up"
    text = ctx.t(key, staff.locale, alias=participant.alias, new=new, count=escalation.follow_up_count)
    message = await say(messenger, staff.chat_id, text, urgent=True)
    now = ctx.clock.now()
    escalation.follow_up_notified = escalation.follow_up_count
    escalation.follow_up_notice_at = now
    record_event(session, escalation.id, now, "follow_up_notice", staff_id=staff.id, detail=f"new:{new}")
    disclose(session, now, participant.id, f"staff:{staff.id}", "notice", "follow_up")
    return Delivered(staff.chat_id, message.message_id)



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
    ctx.page_sent()  # the backlog the edge held back for this page may go on
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
        await page_step(session, ctx, escalation, escalation.participant, step=int(row.payload.get("step", 0)) + 1,
                        due=paged_at + ack_wait(ctx, escalation))
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
            await page_step(session, ctx, escalation, participant, step=int(row.payload.get("step", 0)) + 1,
                            due=now + ack_wait(ctx, escalation) if whole_chain else now)
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
        await plan_turn(session, ctx, escalation, UNACKNOWLEDGED, turn + 1, now + timedelta(days=1))
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
    await plan_turn(session, ctx, escalation, UNRESOLVED_STAGE, turn + 1, now + wait)
    return Handled(status=ActionStatus.SENT, note=f"reminded {planned}")


async def send_crisis_line(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                           row: ScheduledAction) -> Delivered:
    """The participant's line about their alert: told, or nobody reached (then where help is); for
    a support person's alert, theirs."""
    escalation = await session.get(Escalation, row.escalation_id) if row.escalation_id else None
    if escalation is not None and escalation.source.startswith(SUPPORT_SOURCE):
        return await _support_person_line(ctx, messenger, session, row, escalation)
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


async def _support_person_line(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction,
                               escalation: Escalation) -> Delivered:
    """The line about a support person's alert goes to them: the care team was told, or nobody
    could be reached (then where help is). Never to the participant."""
    link = await session.get(SupportAlert, escalation.id)
    person = await session.get(SupportPerson, link.support_person_id) if link is not None else None
    if person is None or person.chat_id is None or person.unreachable_at is not None:
        raise Skip("support person has no chat")
    line = str(row.payload.get("line"))
    text = support_team_told_text(ctx, person.locale) if line == "team_told" else support_not_reached_text(
        ctx, person.locale)
    message = await say(messenger, person.chat_id, text, urgent=True)
    record_event(session, escalation.id, ctx.clock.now(), f"support_person_{line}")
    return Delivered(person.chat_id, message.message_id)
