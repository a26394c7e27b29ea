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
from bot.context import AppContext
from bot.db.goal_models import GOAL_PROGRESS, Goal, GoalStatus
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.services.local_time import jitter_seconds, local_date, parse_hhmm, plan_daily
from bot.services.scheduling.rows import insert_new

log = logging.getLogger(__name__)

PAGE = 1000  # participants per planning round trip
AHEAD_DAYS = 8  # today and the next seven: the next prompt day is always planned


def goal_progress_key(participant_id: int, day: date) -> str:
    return f"{GOAL_PROGRESS}:{participant_id}:{day.isoformat()}"


def time_after(checkin_time: str, minutes_after: int) -> str:
    """'HH:MM' `minutes_after` the check-in time, on the same clock day (wrapping past midnight)."""
    at = parse_hhmm(checkin_time)
    total = (at.hour * 60 + at.minute + minutes_after) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


def _has_open_goal() -> Any:
    return exists().where(Goal.participant_id == Participant.id, Goal.status == GoalStatus.OPEN)


class GoalPlanner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_plan: datetime | None = None

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               now: datetime) -> list[dict[str, Any]]:
        """The rows (as insert values) of the prompt days from today to a week ahead still to come."""
        g, s = self.ctx.settings.goals, self.ctx.settings.schedule
        if not g.enabled:
            return []
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            return []
        at = time_after(checkin_time, g.minutes_after_checkin)
        jitter = jitter_seconds(participant_id, s.jitter_minutes)
        weekday = WEEKDAYS.index(g.day)
        today = local_date(now, zone)
        rows = []
        for day in (today + timedelta(days=n) for n in range(AHEAD_DAYS)):
            if day.weekday() != weekday:
                continue
            planned = plan_daily(day, at, zone.key, quiet_start, quiet_end, s.quiet_hours_policy, jitter)
            if planned.due is not None and planned.due > now:
                rows.append(dict(kind=GOAL_PROGRESS, key=goal_progress_key(participant_id, day), due_at=planned.due,
                                 intended_at=planned.intended, status=ActionStatus.PENDING,
                                 participant_id=participant_id, payload={"date": day.isoformat()},
                                 created_at=now, attempts=0))
        return rows

    async def tick(self, now: datetime) -> None:
        """From the scheduler tick: plan when it is time (the rows are idempotent on their key)."""
        interval = timedelta(minutes=self.ctx.settings.schedule.plan_interval_minutes)
        if self._last_plan is None or now - self._last_plan >= interval or now < self._last_plan:
            created = await self.plan(now)
            self._last_plan = now
            if created:
                log.info("planned %s goal progress rows", created)

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active participant with an open goal; returns how many."""
        if not self.ctx.settings.goals.enabled:
            return 0
        after, created = 0, 0
        while True:
            async with self.ctx.sessionmaker() as session:
                people = (await session.execute(
                    select(Participant.id, Participant.timezone, Participant.checkin_time, Participant.quiet_start,
                           Participant.quiet_end)
                    .where(Participant.status == ParticipantStatus.ACTIVE, Participant.unreachable_at.is_(None),
                           Participant.chat_id.is_not(None), Participant.id > after, _has_open_goal())
                    .order_by(Participant.id).limit(PAGE))).all()
                if not people:
                    return created
                after = people[-1].id
                rows = [row for p in people
                        for row in self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start, p.quiet_end, now)]
                have = set((await session.scalars(select(ScheduledAction.key).where(
                    ScheduledAction.key.in_([r["key"] for r in rows])))).all()) if rows else set()
                created += await insert_new(session, [r for r in rows if r["key"] not in have])
                await session.commit()

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
        rows = (await session.scalars(select(ScheduledAction).where(
            ScheduledAction.participant_id == participant.id, ScheduledAction.kind == GOAL_PROGRESS,
            (ScheduledAction.status == ActionStatus.PENDING) | ScheduledAction.key.in_(list(wanted))))).all()
        for row in rows:
            want = wanted.pop(row.key, None)
            if row.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
                continue  # that week's prompt went out (or is going out)
            if want is None:
                if row.status == ActionStatus.PENDING and (not active or row.due_at > now):
                    row.status, row.last_error = ActionStatus.CANCELLED, "no open goal, not active, or day changed"
            else:
                row.status, row.due_at, row.intended_at = ActionStatus.PENDING, want["due_at"], want["intended_at"]
                row.payload = want["payload"]
                row.last_error, row.attempts, row.lease_until, row.claimed_by = None, 0, None, None
        if wanted:
            await insert_new(session, list(wanted.values()))
