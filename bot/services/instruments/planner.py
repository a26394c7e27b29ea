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
from bot.db.instrument_models import INSTRUMENT
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

AHEAD_DAYS = 8  # today and the next seven: the next questionnaire day is always planned


class InstrumentPlanner(PeriodicPlanner):
    what = "questionnaire rows"

    def enabled(self) -> bool:
        return self.ctx.settings.instruments.enabled and bool(self.ctx.settings.instruments.ask)

    def questionnaire_day(self, day: date, start: date | None) -> bool:
        i = self.ctx.settings.instruments
        if day.weekday() != WEEKDAYS.index(i.day):
            return False
        return start is None or max((day - start).days, 0) // 7 % i.every_weeks == 0

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               consented_at: datetime | None, now: datetime) -> list[dict[str, Any]]:
        """The rows (as insert values) of the questionnaire days from today to a week ahead still to come."""
        i = self.ctx.settings.instruments
        if not i.enabled or not i.ask:
            return []
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            return []
        start = local_date(consented_at, zone) if consented_at else None
        today = local_date(now, zone)
        days = [d for d in (today + timedelta(days=n) for n in range(AHEAD_DAYS)) if self.questionnaire_day(d, start)]
        return daily_rows(INSTRUMENT, participant_id, timezone, time_after(checkin_time, i.minutes_after_checkin),
                          quiet_start, quiet_end, days, now, self.ctx.settings.schedule,
                          lambda day: {"date": day.isoformat(), "instruments": list(i.ask)})

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active participant; returns how many were added."""
        return await plan_in_pages(
            self.ctx.sessionmaker,
            lambda after: select(Participant.id, Participant.timezone, Participant.checkin_time,
                                 Participant.quiet_start, Participant.quiet_end, Participant.consented_at)
            .where(*reachable_participants(), Participant.id > after).order_by(Participant.id).limit(PAGE),
            lambda p: self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start, p.quiet_end, p.consented_at, now))

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """A participant's times or status changed: pending rows move, or are cancelled when not
        active or no longer a questionnaire day; a day cancelled by a pause comes back on resume."""
        await session.flush()
        active = participant.receives_messages
        wanted = {row["key"]: row for row in self.wanted(
            participant.id, participant.timezone, participant.checkin_time, participant.quiet_start,
            participant.quiet_end, participant.consented_at, now)} if active else {}
        await sync_pending(session, participant.id, INSTRUMENT, wanted, now,
                           cancel=lambda row: not active or row.due_at > now,
                           why="participant not active or day changed")
