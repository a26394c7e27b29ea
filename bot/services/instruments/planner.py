"""Planning the weekly questionnaires: one `instrument` row per participant and questionnaire day.

- The day is `[instruments] day` in the participant's own time zone, every `every_weeks` weeks
  counted from the week they consented; the time is their check-in time plus
  `minutes_after_checkin`, DST-correct, with quiet hours deferring or skipping it as for check-ins
  (`[schedule] quiet_hours_policy`). The row of the next such day (up to a week ahead) exists at
  all times, so a restart neither loses nor repeats one; its key `instrument:<participant>:<date>`
  lets any number of workers plan at once.
- `replan_participant` runs in the transaction that changes a participant's zone, times or status:
  pending rows move or are cancelled, a day cancelled by a pause comes back on resume. Rows already
  sent stay as they are.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS
from bot.context import AppContext
from bot.db.instrument_models import INSTRUMENT
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.services.instruments.service import instrument_key
from bot.services.local_time import jitter_seconds, local_date, parse_hhmm, plan_daily
from bot.services.scheduling.rows import insert_new

log = logging.getLogger(__name__)

PAGE = 1000  # participants per planning round trip
AHEAD_DAYS = 8  # today and the next seven: the next questionnaire day is always planned


def time_after(checkin_time: str, minutes_after: int) -> str:
    """'HH:MM' `minutes_after` the check-in time, on the same clock day (wrapping past midnight)."""
    at = parse_hhmm(checkin_time)
    total = (at.hour * 60 + at.minute + minutes_after) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


class InstrumentPlanner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_plan: datetime | None = None

    def questionnaire_day(self, day: date, start: date | None) -> bool:
        i = self.ctx.settings.instruments
        if day.weekday() != WEEKDAYS.index(i.day):
            return False
        return start is None or max((day - start).days, 0) // 7 % i.every_weeks == 0

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               consented_at: datetime | None, now: datetime) -> list[dict[str, Any]]:
        """The rows (as insert values) of the questionnaire days from today to a week ahead still to come."""
        i, s = self.ctx.settings.instruments, self.ctx.settings.schedule
        if not i.enabled or not i.ask:
            return []
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            return []
        start = local_date(consented_at, zone) if consented_at else None
        at = time_after(checkin_time, i.minutes_after_checkin)
        jitter = jitter_seconds(participant_id, s.jitter_minutes)
        today = local_date(now, zone)
        rows = []
        for day in (today + timedelta(days=n) for n in range(AHEAD_DAYS)):
            if not self.questionnaire_day(day, start):
                continue
            planned = plan_daily(day, at, zone.key, quiet_start, quiet_end, s.quiet_hours_policy, jitter)
            if planned.due is not None and planned.due > now:
                rows.append(dict(kind=INSTRUMENT, key=instrument_key(participant_id, day), due_at=planned.due,
                                 intended_at=planned.intended, status=ActionStatus.PENDING,
                                 participant_id=participant_id,
                                 payload={"date": day.isoformat(), "instruments": list(i.ask)},
                                 created_at=now, attempts=0))
        return rows

    async def tick(self, now: datetime) -> None:
        """From the scheduler tick: plan when it is time (the rows are idempotent on their key)."""
        interval = timedelta(minutes=self.ctx.settings.schedule.plan_interval_minutes)
        if self._last_plan is None or now - self._last_plan >= interval or now < self._last_plan:
            created = await self.plan(now)
            self._last_plan = now
            if created:
                log.info("planned %s questionnaire rows", created)

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active participant; returns how many were added."""
        after, created = 0, 0
        while True:
            async with self.ctx.sessionmaker() as session:
                people = (await session.execute(
                    select(Participant.id, Participant.timezone, Participant.checkin_time, Participant.quiet_start,
                           Participant.quiet_end, Participant.consented_at)
                    .where(Participant.status == ParticipantStatus.ACTIVE, Participant.unreachable_at.is_(None),
                           Participant.chat_id.is_not(None), Participant.id > after)
                    .order_by(Participant.id).limit(PAGE))).all()
                if not people:
                    return created
                after = people[-1].id
                rows = [row for p in people for row in self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start,
                                                                   p.quiet_end, p.consented_at, now)]
                have = set((await session.scalars(select(ScheduledAction.key).where(
                    ScheduledAction.key.in_([r["key"] for r in rows])))).all()) if rows else set()
                created += await insert_new(session, [r for r in rows if r["key"] not in have])
                await session.commit()

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """A participant's times or status changed: pending rows move, or are cancelled when not
        active or no longer a questionnaire day; a day cancelled by a pause comes back on resume."""
        await session.flush()
        active = participant.receives_messages
        wanted = {row["key"]: row for row in self.wanted(
            participant.id, participant.timezone, participant.checkin_time, participant.quiet_start,
            participant.quiet_end, participant.consented_at, now)} if active else {}
        rows = (await session.scalars(select(ScheduledAction).where(
            ScheduledAction.participant_id == participant.id, ScheduledAction.kind == INSTRUMENT,
            (ScheduledAction.status == ActionStatus.PENDING) | ScheduledAction.key.in_(list(wanted))))).all()
        for row in rows:
            want = wanted.pop(row.key, None)
            if row.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
                continue  # that week's questionnaire went out (or is going out)
            if want is None:
                if row.status == ActionStatus.PENDING and (not active or row.due_at > now):
                    row.status, row.last_error = ActionStatus.CANCELLED, "participant not active or day changed"
            else:
                row.status, row.due_at, row.intended_at = ActionStatus.PENDING, want["due_at"], want["intended_at"]
                row.payload = want["payload"]
                row.last_error, row.attempts, row.lease_until, row.claimed_by = None, 0, None, None
        if wanted:
            await insert_new(session, list(wanted.values()))
