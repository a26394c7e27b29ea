"""Family-session reminders for support persons: the calendar's own reminders, for the family
sessions (kind "family") the participant is expected at, sent to each of their active support
persons with the video link.

The timing and the words are the calendar's (bot/services/calendar): the same offsets
(`[reminders] offsets_minutes`), the same quiet-hours rule (the participant's quiet hours: a
family session is the household's), the same "Your family session starts at 3:00 PM." with a Join
button (no Can't attend: that is the participant's to say). A moved session re-times the rows, a
cancelled one cancels them, and a revocation cancels them all (their keys start with the support
person's, bot/services/support/service.py `person_key`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import SessionKind, SessionOccurrence
from bot.db.models import ActionStatus, ScheduledAction
from bot.db.support_models import SupportPerson, SupportStatus
from bot.messaging import Messenger, say
from bot.services.calendar import occurrences as cal
from bot.services.calendar.reminders import reminder_text, session_keyboard
from bot.services.scheduling.outbox import Delivered, Skip
from bot.services.scheduling.rows import OneTransactionPlanner, enqueue
from bot.services.support.service import MAY_INVITE, person_key

log = logging.getLogger(__name__)

FAMILY_REMINDER_KIND = "family_reminder"


async def plan_family_reminders(session: AsyncSession, ctx: AppContext, person: SupportPerson, now: datetime) -> int:
    """Reconcile one support person's family-session reminder rows with the calendar. Returns how
    many rows were added or re-timed."""
    settings = ctx.settings
    participant = person.participant
    desired: dict[str, tuple[datetime, datetime, int, int]] = {}
    if person.status == SupportStatus.ACTIVE and participant.status in MAY_INVITE:
        horizon = now + timedelta(hours=settings.reminders.plan_ahead_hours)
        for occ in await cal.participant_upcoming(session, participant, now, horizon):
            if occ.session.kind != SessionKind.FAMILY:
                continue
            for offset in settings.reminders.offsets_minutes:
                due = cal.reminder_due(settings, participant, occ.start_at, offset)
                intended = occ.start_at - timedelta(minutes=offset)
                if due >= now - cal.LATE_TOLERANCE:
                    desired[person_key(person.id, f"family:{occ.id}:{offset}")] = (due, intended, occ.id, offset)
    existing = {row.key: row for row in (await session.scalars(select(ScheduledAction).where(
        ScheduledAction.kind == FAMILY_REMINDER_KIND, ScheduledAction.status == ActionStatus.PENDING,
        ScheduledAction.key.like(person_key(person.id, "family:%"))))).all()}
    changed = 0
    for key, row in existing.items():
        want = desired.get(key)
        if want is None:
            row.status, row.last_error = ActionStatus.CANCELLED, "family session cancelled or moved away"
        elif (row.due_at, row.intended_at) != want[:2]:
            row.due_at, row.intended_at = want[0], want[1]
            changed += 1
    for key, (due, intended, occurrence_id, offset) in desired.items():
        if key not in existing:
            changed += await enqueue(session, kind=FAMILY_REMINDER_KIND, key=key, due_at=due, intended_at=intended,
                                     payload={"support_person_id": person.id, "occurrence_id": occurrence_id,
                                              "offset_minutes": offset}, now=now)
    await session.flush()
    return changed


class FamilyReminderPlanner(OneTransactionPlanner):
    """Plans every active support person's family-session reminders, from the tick (at most once a
    plan interval, like the participants' session reminders)."""

    what = "family-session reminders (planned or re-timed)"

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        people = (await session.scalars(select(SupportPerson).where(
            SupportPerson.status == SupportStatus.ACTIVE))).unique().all()
        return sum([await plan_family_reminders(session, self.ctx, p, now) for p in people])


async def send_family_reminder(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                               row: ScheduledAction) -> Delivered:
    """ActionSender for `family_reminder` rows."""
    person = await session.get(SupportPerson, int(row.payload.get("support_person_id", 0)))
    if person is None or not person.receives_messages or person.participant.status not in MAY_INVITE:
        raise Skip("support person no longer active")
    occ = await session.get(SessionOccurrence, int(row.payload.get("occurrence_id", 0)))
    now = ctx.clock.now()
    if occ is None or occ.is_cancelled or occ.start_at <= now:
        raise Skip("session cancelled or already started")
    if not await cal.is_for(session, occ, person.participant_id):
        raise Skip("the participant is no longer expected at this session")
    assert person.chat_id is not None
    message = await say(messenger, person.chat_id, reminder_text(ctx, person, occ, now),
                        session_keyboard(ctx, occ, person.locale, cant_attend=False))
    return Delivered(person.chat_id, message.message_id)
