"""Planning the weekly goal progress prompt: one `goal_progress` row per participant and week.

- The day is `[goals] day` in the participant's own time zone; the time is their check-in time
  plus `minutes_after_checkin`, DST-correct, with quiet hours deferring or skipping it as for
  check-ins (`[schedule] quiet_hours_policy`), as the weekly questionnaires are planned.
- Only participants with an open goal get a row: adding the first goal plans this week's prompt
  in that transaction (`replan_participant`, called by services/goals/service.py), and closing the
  last one cancels it. The next such day's row (up to a week ahead) exists at all times, so a
  restart neither loses nor repeats one; its key `goal_progress:<participant>:<date>` lets any
  number of workers plan at once.
- `replan_participant` also runs in the transaction that changes a participant's zone, times or
  status (it is one of `ctx.replanners`): pending rows move or are cancelled. Rows sent stay.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS
from bot.db.goal_models import GOAL_PROGRESS, Goal, GoalStatus
from bot.db.models import Participant
from bot.services.local_time import local_date
from bot.services.scheduling.rows import (
    PAGE,
    PeriodicPlanner,
    daily_rows,
    plan_in_pages,
    reachable_participants,
    sync_pending,
    time_after,
)

log = logging.getLogger(__name__)

AHEAD_DAYS = 8  # today and the next seven: the next prompt day is always planned


def goal_progress_key(participant_id: int, day: date) -> str:
    return f"{GOAL_PROGRESS}:{participant_id}:{day.isoformat()}"


def _has_open_goal() -> Any:
    return exists().where(Goal.participant_id == Participant.id, Goal.status == GoalStatus.OPEN)


class GoalPlanner(PeriodicPlanner):
    what = "goal progress rows"

    def enabled(self) -> bool:
        return self.ctx.settings.goals.enabled

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               now: datetime) -> list[dict[str, Any]]:
        """The rows (as insert values) of the prompt days from today to a week ahead still to come."""
        g = self.ctx.settings.goals
        if not g.enabled:
            return []
        try:
            today = local_date(now, ZoneInfo(timezone))
        except (KeyError, ValueError):
            return []
        weekday = WEEKDAYS.index(g.day)
        days = [d for d in (today + timedelta(days=n) for n in range(AHEAD_DAYS)) if d.weekday() == weekday]
        return daily_rows(GOAL_PROGRESS, participant_id, timezone, time_after(checkin_time, g.minutes_after_checkin),
                          quiet_start, quiet_end, days, now, self.ctx.settings.schedule,
                          lambda day: {"date": day.isoformat()})

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active participant with an open goal; returns how many."""
        if not self.enabled():
            return 0
        return await plan_in_pages(
            self.ctx.sessionmaker,
            lambda after: select(Participant.id, Participant.timezone, Participant.checkin_time,
                                 Participant.quiet_start, Participant.quiet_end)
            .where(*reachable_participants(), Participant.id > after, _has_open_goal())
            .order_by(Participant.id).limit(PAGE),
            lambda p: self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start, p.quiet_end, now))

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """A participant's times, status or goals changed: pending rows move, or are cancelled when
        they are not active, have no open goal, or it is no longer the day; a cancelled day comes back."""
        await session.flush()
        has_goal = bool(await session.scalar(select(exists().where(
            Goal.participant_id == participant.id, Goal.status == GoalStatus.OPEN))))
        active = participant.receives_messages and has_goal
        wanted = {row["key"]: row for row in self.wanted(
            participant.id, participant.timezone, participant.checkin_time, participant.quiet_start,
            participant.quiet_end, now)} if active else {}
        await sync_pending(session, participant.id, GOAL_PROGRESS, wanted, now,
                           cancel=lambda row: not active or row.due_at > now,
                           why="no open goal, not active, or day changed")
