"""What the scheduler did today, and how many check-ins get answered (`iopbot schedule status`,
bot/cli/schedule.py).

For each kind of scheduled row due today (the program's day, in `[program] default_timezone`):
how many are pending, being sent, sent, answered, expired (due while the bot was down longer
than the grace period), failed and cancelled. Then the check-in response rate of the last 7
days: answered out of the check-ins that reached participants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.checkin_models import CHECKIN
from bot.db.models import ActionStatus, ScheduledAction
from bot.services.local_time import wall_time_to_utc

STATUSES = [ActionStatus.PENDING, ActionStatus.CLAIMED, ActionStatus.SENT, ActionStatus.ANSWERED,
            ActionStatus.EXPIRED, ActionStatus.FAILED, ActionStatus.CANCELLED]
_HEADINGS = {ActionStatus.CLAIMED: "sending"}


@dataclass
class ScheduleStatus:
    day: str
    timezone: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> status -> count
    checkins_delivered: int = 0  # sent or answered, last 7 days
    checkins_answered: int = 0
    checkins_open: int = 0  # sent, and their expiry has not come yet
    checkins_expired: int = 0  # never sent: the bot was down past the grace period

    @property
    def response_rate(self) -> float | None:
        closed = self.checkins_delivered - self.checkins_open
        return self.checkins_answered / closed if closed > 0 else None


async def schedule_status(session: AsyncSession, now: datetime, timezone: str, expire_hours: float) -> ScheduleStatus:
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start = wall_time_to_utc(today, datetime.min.time(), zone)
    end = wall_time_to_utc(today + timedelta(days=1), datetime.min.time(), zone)
    status = ScheduleStatus(today.isoformat(), timezone)
    rows = (await session.execute(
        select(ScheduledAction.kind, ScheduledAction.status, func.count())
        .where(ScheduledAction.due_at >= start, ScheduledAction.due_at < end)
        .group_by(ScheduledAction.kind, ScheduledAction.status))).all()
    for kind, row_status, count in rows:
        status.counts.setdefault(kind, {s.value: 0 for s in STATUSES})[row_status] = int(count)
    week_rows = (ScheduledAction.kind == CHECKIN, ScheduledAction.intended_at >= now - timedelta(days=7),
                 ScheduledAction.intended_at <= now)
    week = dict((await session.execute(
        select(ScheduledAction.status, func.count()).where(*week_rows).group_by(ScheduledAction.status))).all())
    status.checkins_answered = int(week.get(ActionStatus.ANSWERED, 0))
    status.checkins_delivered = status.checkins_answered + int(week.get(ActionStatus.SENT, 0))
    status.checkins_expired = int(week.get(ActionStatus.EXPIRED, 0))
    status.checkins_open = int(await session.scalar(
        select(func.count()).select_from(ScheduledAction)
        .where(*week_rows, ScheduledAction.status == ActionStatus.SENT,
               ScheduledAction.sent_at > now - timedelta(hours=expire_hours))) or 0)
    return status


def render(status: ScheduleStatus) -> str:
    lines = [f"Scheduled actions due today ({status.day}, {status.timezone}):"]
    headings = [_HEADINGS.get(s, s.value) for s in STATUSES]
    width = max([len("kind")] + [len(k) for k in status.counts])
    lines.append("  " + "kind".ljust(width) + "".join(h.rjust(11) for h in headings))
    for kind in sorted(status.counts):
        lines.append("  " + kind.ljust(width) + "".join(str(status.counts[kind][s.value]).rjust(11) for s in STATUSES))
    if not status.counts:
        lines.append("  (nothing due today)")
    lines.append("")
    rate = status.response_rate
    shown = f"{rate:.1%}" if rate is not None else "n/a"
    closed = status.checkins_delivered - status.checkins_open
    lines.append(f"Check-in response rate, last 7 days: {shown} "
                 f"({status.checkins_answered} answered of {closed} delivered and closed; "
                 f"{status.checkins_open} still open; {status.checkins_expired} expired unsent)")
    return "\n".join(lines)
