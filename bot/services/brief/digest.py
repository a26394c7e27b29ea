"""The daily digest, sent at the time each staff member chose (`/digest at 07:30`, in their zone).

The same digest as `/digest` (bot/services/caseload.py digest_for, the words in caseload_text):
the last 24 hours of their caseload and every alert still open. One `daily_digest` row per staff
member and local day, key `digest:<staff>:<date>`, planned for today (if the time is still to
come) and tomorrow, so a restart neither loses nor repeats one. A changed time moves the pending
rows; `/digest off` cancels them. Each participant named is a disclosure to the reader.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, time, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import ActionStatus, ScheduledAction, Staff
from bot.messaging import Messenger, say
from bot.services.audit import disclose
from bot.services.caseload import digest_for
from bot.services.caseload_text import digest_messages
from bot.services.local_time import local_date, wall_time_to_utc
from bot.services.scheduling.outbox import Delivered, Skip
from bot.services.scheduling.rows import OneTransactionPlanner, enqueue
from bot.services.staff_time import staff_zone

log = logging.getLogger(__name__)

DAILY_DIGEST = "daily_digest"
PAGE = 500


def parse_digest_time(text: str) -> str | None:
    """'07:30', '7:30', '730', '7', '7:30 pm', '19.30' → 'HH:MM'; None when it is not a time of day."""
    match = re.fullmatch(r"\s*(\d{1,2})(?:[:.h]?(\d{2}))?\s*([ap]\.?m\.?)?\s*", text.lower())
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match.group(3).startswith("p") else 0)
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def digest_key(staff_id: int, day: str) -> str:
    return f"digest:{staff_id}:{day}"


class DigestPlanner(OneTransactionPlanner):
    what = "daily digests"

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        staff = (await session.scalars(
            select(Staff).where(Staff.digest_at.is_not(None), Staff.active.is_(True),
                                Staff.deactivated_at.is_(None)).limit(PAGE * 20))).all()
        for member in staff:
            await plan_digest(session, self.ctx, member, now)
        return 0  # the digest rows are kept in line, not counted


async def plan_digest(session: AsyncSession, ctx: AppContext, staff: Staff, now: datetime) -> None:
    """Rows of today's (if still to come) and tomorrow's digest at the staff member's time; with
    no time chosen, their pending rows are cancelled."""
    if staff.digest_at is None:
        await session.execute(update(ScheduledAction).where(
            ScheduledAction.kind == DAILY_DIGEST, ScheduledAction.staff_id == staff.id,
            ScheduledAction.status == ActionStatus.PENDING).values(status=ActionStatus.CANCELLED,
                                                                   last_error="digest turned off"))
        return
    zone = staff_zone(ctx, staff)
    hour, minute = (int(x) for x in staff.digest_at.split(":"))
    today = local_date(now, zone)
    for day in (today, today + timedelta(days=1)):
        due = wall_time_to_utc(day, time(hour, minute), zone)
        key = digest_key(staff.id, day.isoformat())
        if due <= now:
            # The (new) time has passed today: a row still pending for today was for another time.
            await session.execute(update(ScheduledAction).where(
                ScheduledAction.key == key, ScheduledAction.status == ActionStatus.PENDING,
                ScheduledAction.due_at > now).values(status=ActionStatus.CANCELLED, last_error="digest time changed"))
            continue
        if not await enqueue(session, kind=DAILY_DIGEST, key=key, due_at=due, staff_id=staff.id, now=now):
            # A changed time moves the row; a digest turned off and on again comes back.
            await session.execute(update(ScheduledAction).where(
                ScheduledAction.key == key, ScheduledAction.status.in_([ActionStatus.PENDING, ActionStatus.CANCELLED]),
                ScheduledAction.sent_at.is_(None))
                .values(due_at=due, intended_at=due, status=ActionStatus.PENDING, last_error=None))


async def send_daily_digest(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                            row: ScheduledAction) -> Delivered:
    """ActionSender for `daily_digest` rows."""
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    if staff is None or staff.chat_id is None or not staff.active or staff.deactivated_at is not None:
        raise Skip("no staff chat to send the digest to")
    if staff.digest_at is None:
        raise Skip("digest turned off")
    now = ctx.clock.now()
    digest = await digest_for(session, staff, now, expire_hours=ctx.settings.checkin.expire_hours)
    texts = digest_messages(ctx, digest, staff.locale, staff_zone(ctx, staff))
    message = None
    for text in texts:
        message = await say(messenger, staff.chat_id, text)
    for participant_id in sorted(digest.participant_ids):
        disclose(session, now, participant_id, f"staff:{staff.id}", "digest", "daily")
    await plan_digest(session, ctx, staff, now)  # the next day's row, without waiting for the planner
    return Delivered(staff.chat_id, message.message_id if message is not None else None)
