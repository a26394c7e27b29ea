"""A coach or clinician writes to a participant (/message ALIAS text); the reply goes back to them.

- The staff member's words are stored (encrypted at rest) and sent through the outbox as an
  `outreach_message` row, after the participant's quiet hours if they are in them (at once while
  an alert of theirs is unresolved, and the sender is told so), signed with the
  sender's role only ("your coach", "your therapist", "your care team"): minimum necessary, no
  names (staff have no display name in this bot). Reply and "I'm OK, thanks" buttons come with it.
- Nothing is dropped silently: a participant who is paused, stopped, discharged or blocked the bot
  gets nothing, and the staff member is told so plainly (at once, or by an `outreach_staff_line`
  row when it happens between writing and sending).
- The reply (typed words, stored once as the participant's InboundMessage after the safety gate
  assessed them, or the quick "I'm OK") goes to the sender as an `outreach_reply` row, rendered when
  sent, so no words wait in the outbox. If the sender has left (or may no longer see the
  participant), the clinician, the backup, then a lead or admin gets it; if nobody can, the
  participant is told so plainly, with the crisis line. Forwarded once (`forwarded_at`).
- Privacy (CLINICAL.md, 42 CFR Part 2): the message to the participant is not a disclosure (nothing
  about the participant goes anywhere); forwarding their reply to a staff member is: a Disclosure
  row (kind `outreach_reply`) with the recipient and time, plus an audit entry. Sending a message is
  audited as the staff member's action; a refusal (not on their caseload) is audited as refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import (
    ActionStatus,
    InboundMessage,
    Participant,
    ParticipantStatus,
    ScheduledAction,
    Staff,
    StaffRole,
)
from bot.db.outreach_models import OutreachMessage, OutreachReply, OutreachStatus, ReplyKind
from bot.messaging import Keyboard, Messenger, NotDelivered, Unreachable, keyboard, say
from bot.safety.levels import Level
from bot.services.audit import actor_label, audit, disclose
from bot.services.calendar.occurrences import quiet_window
from bot.services.calendar.reminders import time_text
from bot.services.escalation.record import open_escalation
from bot.services.scheduling.outbox import Delivered, Handled, Skip
from bot.services.scheduling.rows import enqueue
from bot.services.visibility import may_see

MESSAGE_KIND = "outreach_message"  # the staff member's words, to the participant
REPLY_KIND = "outreach_reply"  # the participant's answer, to the staff member
STAFF_LINE_KIND = "outreach_staff_line"  # "your message to P-101 was not delivered: ..."

MAX_TEXT_CHARS = 3000  # Telegram's 4096 less the header and room for escaping
REPLY_SHOWN_CHARS = 3500
# After this many failed tries (Telegram down, timeouts) the sender is told it did not go.
GIVE_UP_AFTER_ATTEMPTS = 5

# Statuses in which a participant may be written to: in the program, and alumni (who still get
# their short check-ins). Paused, stopped, discharged or not enrolled yet: the sender is told.
REACHABLE = frozenset({ParticipantStatus.ACTIVE, ParticipantStatus.ALUMNI})

# Callback data (ids only, never text).
REPLY_PREFIX = "or:reply:"
OK_PREFIX = "or:ok:"
NEW_PREFIX = "om:new:"  # staff: start /message for a participant (from /trends or a forwarded reply)


def why_not_reachable(participant: Participant) -> str | None:
    """A code for why nothing can be sent to this participant now, or None when it can."""
    if participant.status in (ParticipantStatus.PAUSED, ParticipantStatus.DISCHARGED, ParticipantStatus.OPTED_OUT):
        return str(participant.status)
    if participant.status not in REACHABLE or participant.chat_id is None:
        return "not_enrolled"
    if participant.unreachable_at is not None:
        return "blocked"
    return None


def role_words(ctx: AppContext, staff: Staff, locale: str) -> str:
    """How the participant sees the sender: "your coach", "your therapist", "your care team"."""
    key = {str(StaffRole.COACH): "outreach.from_coach", str(StaffRole.THERAPIST): "outreach.from_therapist"}.get(
        staff.role, "outreach.from_team")  # leads and admins: the team, not a title
    return ctx.t(key, locale)


def message_button(ctx: AppContext, participant: Participant, locale: str) -> Keyboard:
    """A "Message P-101" button for staff views of one participant; it starts /message."""
    return keyboard([[(ctx.t("outreach.message_button", locale, alias=participant.alias),
                       f"{NEW_PREFIX}{participant.id}")]])


def message_text(ctx: AppContext, message: OutreachMessage, locale: str) -> str:
    return ctx.t("outreach.delivered", locale, role=role_words(ctx, message.staff, locale), text=message.text)


def message_keyboard(ctx: AppContext, message: OutreachMessage, locale: str) -> Keyboard:
    return keyboard([[(ctx.t("outreach.reply_button", locale), f"{REPLY_PREFIX}{message.id}"),
                      (ctx.t("outreach.ok_button", locale), f"{OK_PREFIX}{message.id}")]])


def not_sent_text(ctx: AppContext, staff: Staff, alias: str, why: str, *, later: bool = False) -> str:
    reason = ctx.t(f"outreach.why_{why}", staff.locale) if ctx.texts.has(f"outreach.why_{why}") \
        else ctx.t("outreach.why_failed", staff.locale)
    return ctx.t("outreach.not_delivered" if later else "outreach.not_sent", staff.locale, alias=alias) \
        + " " + reason


@dataclass(frozen=True)
class Queued:
    message: OutreachMessage
    # When the participant is in quiet hours: the local time it goes, in their zone ("8:00 AM").
    after_quiet_hours: str | None = None
    # In quiet hours, but an alert of theirs is unresolved: it goes now, and the sender is told why.
    now_despite_quiet_hours: bool = False


async def queue_message(session: AsyncSession, ctx: AppContext, staff: Staff, participant: Participant,
                        text: str, now: datetime) -> Queued:
    """Store the staff member's words and plan their delivery: after quiet hours, if in them,
    unless the participant has an unresolved alert (then at once: a clinician reaching out during
    an alert must not wait until morning). The caller checked `may_see` and `why_not_reachable`."""
    in_quiet = quiet_window(participant, now)
    alert_open = in_quiet is not None and await open_escalation(session, participant.id) is not None
    quiet = None if alert_open else in_quiet
    due = quiet[1] if quiet else now
    message = OutreachMessage(participant_id=participant.id, staff_id=staff.id, text=text.strip(),
                              status=OutreachStatus.QUEUED, created_at=now, due_at=due)
    session.add(message)
    await session.flush()
    await enqueue(session, kind=MESSAGE_KIND, key=f"outreach:{message.id}", due_at=due, now=now,
                  participant_id=participant.id, staff_id=staff.id, payload={"message_id": message.id})
    audit(session, now, actor_label(staff), "outreach:message", participant_id=participant.id)
    later = time_text(ctx, due, participant.timezone, staff.locale) if quiet else None
    return Queued(message, later, now_despite_quiet_hours=alert_open)


async def _tell_sender_not_delivered(session: AsyncSession, message: OutreachMessage, why: str,
                                     now: datetime) -> None:
    message.status, message.not_delivered_reason = OutreachStatus.NOT_DELIVERED, why
    await enqueue(session, kind=STAFF_LINE_KIND, key=f"outreach_line:{message.id}", due_at=now, now=now,
                  participant_id=message.participant_id, staff_id=message.staff_id,
                  payload={"message_id": message.id, "why": why})


async def send_outreach_message(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                                row: ScheduledAction) -> Delivered | Handled:
    """ActionSender for `outreach_message` rows: the staff member's words to the participant."""
    message = await session.get(OutreachMessage, int(row.payload.get("message_id", 0)))
    if message is None or message.status != OutreachStatus.QUEUED:
        raise Skip("message gone or already handled")
    participant = message.participant
    now = ctx.clock.now()
    why = why_not_reachable(participant)
    if why is not None:
        await _tell_sender_not_delivered(session, message, why, now)
        return Handled(note=f"not delivered: {why}")
    try:
        sent = await say(messenger, participant.chat_id or 0, message_text(ctx, message, participant.locale),
                         message_keyboard(ctx, message, participant.locale))
    except Unreachable:
        await _tell_sender_not_delivered(session, message, "blocked", now)
        return Handled(status=ActionStatus.FAILED, note="blocked by the user")
    except NotDelivered:
        if row.attempts < GIVE_UP_AFTER_ATTEMPTS:
            raise  # tried again after a back-off
        await _tell_sender_not_delivered(session, message, "failed", now)
        return Handled(status=ActionStatus.FAILED, note="not delivered after several tries")
    message.status, message.sent_at, message.telegram_message_id = OutreachStatus.SENT, now, sent.message_id
    return Delivered(sent.chat_id, sent.message_id)


async def send_staff_line(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                          row: ScheduledAction) -> Delivered:
    """ActionSender for `outreach_staff_line` rows: the sender is told their message did not go."""
    message = await session.get(OutreachMessage, int(row.payload.get("message_id", 0)))
    if message is None or message.staff.chat_id is None or not message.staff.active:
        raise Skip("no staff chat to tell")
    staff = message.staff
    text = not_sent_text(ctx, staff, message.participant.alias, str(row.payload.get("why", "failed")), later=True)
    sent = await say(messenger, staff.chat_id or 0, text)
    return Delivered(sent.chat_id, sent.message_id)


# --- the participant's reply ----------------------------------------------------------------------

async def open_message(session: AsyncSession, ctx: AppContext, participant: Participant, message_id: int,
                       now: datetime) -> OutreachMessage | None:
    """The participant's own delivered message `message_id`, if it still takes a reply."""
    message = await session.get(OutreachMessage, message_id)
    if message is None or message.participant_id != participant.id or message.sent_at is None:
        return None
    if now - message.sent_at > timedelta(hours=ctx.settings.outreach.reply_window_hours):
        return None
    return message


async def message_replied_to(session: AsyncSession, ctx: AppContext, participant: Participant,
                             telegram_message_id: int, now: datetime) -> OutreachMessage | None:
    """The message a participant answered with Telegram's own "reply" (swipe), if it takes a reply."""
    found = await session.scalar(select(OutreachMessage.id).where(
        OutreachMessage.participant_id == participant.id,
        OutreachMessage.telegram_message_id == telegram_message_id))
    return await open_message(session, ctx, participant, found, now) if found is not None else None


async def record_reply(session: AsyncSession, participant: Participant, message: OutreachMessage, now: datetime,
                       *, inbound: InboundMessage | None = None) -> OutreachReply:
    """Store the reply (typed words are the given InboundMessage; none: "I'm OK") and plan its
    delivery to the staff member now."""
    if inbound is not None:
        await session.flush()  # the inbound message's id
    reply = OutreachReply(message_id=message.id, participant_id=participant.id,
                          kind=ReplyKind.TEXT if inbound is not None else ReplyKind.OK,
                          inbound_message_id=inbound.id if inbound is not None else None, received_at=now)
    session.add(reply)
    await session.flush()
    await enqueue(session, kind=REPLY_KIND, key=f"outreach_reply:{reply.id}", due_at=now, now=now,
                  participant_id=participant.id, staff_id=message.staff_id, payload={"reply_id": reply.id})
    return reply


def _can_receive(staff: Staff | None) -> bool:
    """Linked, active, and has not blocked the bot."""
    return (staff is not None and staff.active and staff.deactivated_at is None and staff.chat_id is not None
            and staff.unreachable_at is None)


async def _reply_recipient(session: AsyncSession, participant: Participant, sender: Staff) -> Staff | None:
    """Who gets the reply: the staff member who wrote, then the participant's clinician, their
    backup, then the program's leads and admins; the first who can receive it and may still see
    the participant (a caseload may have changed since the message was written)."""
    leads = (await session.scalars(
        select(Staff).where(Staff.role.in_([StaffRole.LEAD, StaffRole.ADMIN])).order_by(Staff.id))).all()
    seen: set[int] = set()
    for staff in (sender, participant.therapist, participant.backup, *leads):
        if staff is None or staff.id in seen:
            continue
        seen.add(staff.id)
        if _can_receive(staff) and await may_see(session, staff, participant):
            return staff
    return None


async def send_outreach_reply(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                              row: ScheduledAction) -> Delivered | Handled:
    """ActionSender for `outreach_reply` rows: the participant's answer, to the staff member who
    wrote (or, when they left or may no longer see the participant, to the participant's clinician,
    the backup, the leads and admins). A disclosure, and audited. Forwarded once, however often the
    row is handled; when nobody can get it, the participant is told so plainly, with the crisis line."""
    # Locked (PostgreSQL): a row handled twice at once forwards once.
    reply = await session.get(OutreachReply, int(row.payload.get("reply_id", 0)), with_for_update=True)
    if reply is None:
        raise Skip("reply gone")
    if reply.forwarded_at is not None:
        raise Skip("reply already forwarded")
    message = await session.get(OutreachMessage, reply.message_id)
    assert message is not None
    participant = message.participant
    sender = message.staff
    recipient = await _reply_recipient(session, participant, sender)
    if recipient is None:
        if participant.chat_id is None:
            raise Skip("nobody on the care team can be reached, and the participant has no chat")
        sent = await say(messenger, participant.chat_id, ctx.t("outreach.reply_nobody", participant.locale))
        audit(session, ctx.clock.now(), "system", "outreach:reply_not_forwarded:nobody", participant_id=participant.id)
        return Delivered(sent.chat_id, sent.message_id)
    locale = recipient.locale
    if recipient.id == sender.id:
        head = ctx.t("outreach.reply_head", locale, alias=participant.alias)
    else:
        head = ctx.t("outreach.reply_head_for_colleague", locale, alias=participant.alias, sender=sender.alias)
    if reply.kind == ReplyKind.OK:
        text = head + "\n\n" + ctx.t("outreach.reply_ok", locale)
    else:
        inbound = await session.get(InboundMessage, reply.inbound_message_id or 0)
        words = (inbound.text if inbound is not None else None) or ""
        if len(words) > REPLY_SHOWN_CHARS:
            words = words[:REPLY_SHOWN_CHARS] + "…"
        text = head + "\n\n" + ctx.t("outreach.reply_words", locale, words=words)
        if inbound is not None and inbound.escalation_id is not None:
            text += "\n\n" + ctx.t("outreach.reply_flagged_alert", locale)
        elif inbound is not None and inbound.level >= Level.CONCERN:
            text += "\n\n" + ctx.t("outreach.reply_flagged_concern", locale)
    sent = await say(messenger, recipient.chat_id or 0, text, message_button(ctx, participant, locale))
    now = ctx.clock.now()
    reply.forwarded_at, reply.forwarded_to_id = now, recipient.id
    disclose(session, now, participant.id, actor_label(recipient), "outreach_reply", f"outreach:{message.id}")
    audit(session, now, "system", f"outreach:reply_forwarded:{actor_label(recipient)}", participant_id=participant.id)
    return Delivered(sent.chat_id, sent.message_id)
