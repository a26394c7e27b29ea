"""Planning medication reminders: one `med_reminder` row per reminder, local date and time.

- The rows of today and the next `AHEAD_DAYS` local days exist at all times (`plan`, every
  `[schedule] plan_interval_minutes` from the tick), each at the participant's own wall-clock time
  in their zone, DST-correct. Quiet hours do not move them: the participant chose the time. Keys
  `med:<reminder>:<date>:<HHMM>` let any number of workers plan at once.
- `replan_participant` runs in the transaction that changes a participant's zone or status, and
  after a reminder is added or resumed: pending rows move, rows no longer wanted (not active,
  paused, removed, another day or time) are cancelled, a row cancelled by a pause comes back on
  resume. Rows already sent stay as they are.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.medication_models import MED_REMINDER, MedicationReminder
from bot.db.models import ActionStatus, Participant
from bot.services.medications.schedule import days_from_text, planned_doses, times_from_text
from bot.services.scheduling.rows import PAGE, PeriodicPlanner, plan_in_pages, reachable_participants, sync_pending

log = logging.getLogger(__name__)

AHEAD_DAYS = 2  # today, tomorrow and the day after


def wanted_rows(reminder_id: int, participant_id: int, times: str, days: str, timezone: str,
                now: datetime) -> list[dict[str, Any]]:
    """The rows (as insert values) of one reminder's coming doses."""
    return [dict(kind=MED_REMINDER, key=d.key, due_at=d.due, intended_at=d.due, status=ActionStatus.PENDING,
                 participant_id=participant_id, created_at=now, attempts=0,
                 payload={"reminder_id": reminder_id, "date": d.day.isoformat(), "time": d.at})
            for d in planned_doses(reminder_id, times_from_text(times), days_from_text(days), timezone, now,
                                   AHEAD_DAYS)]


class MedicationPlanner(PeriodicPlanner):
    what = "medication reminder rows"

    def enabled(self) -> bool:
        return self.ctx.settings.medications.enabled

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active reminder of every active participant."""
        return await plan_in_pages(
            self.ctx.sessionmaker,
            lambda after: select(MedicationReminder.id, MedicationReminder.participant_id, MedicationReminder.times,
                                 MedicationReminder.days, Participant.timezone)
            .join(Participant, Participant.id == MedicationReminder.participant_id)
            .where(MedicationReminder.removed_at.is_(None), MedicationReminder.paused_at.is_(None),
                   *reachable_participants(), MedicationReminder.id > after)
            .order_by(MedicationReminder.id).limit(PAGE),
            lambda r: wanted_rows(r.id, r.participant_id, r.times, r.days, r.timezone, now))

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """Bring this participant's future reminder rows in line with their reminders, zone and status."""
        await session.flush()
        active = participant.receives_messages and self.ctx.settings.medications.enabled
        wanted: dict[str, dict[str, Any]] = {}
        if active:
            for r in (await session.scalars(select(MedicationReminder).where(
                    MedicationReminder.participant_id == participant.id, MedicationReminder.removed_at.is_(None),
                    MedicationReminder.paused_at.is_(None)))).all():
                wanted.update({row["key"]: row for row in wanted_rows(
                    r.id, participant.id, r.times, r.days, participant.timezone, now)})
        # A snooze stays while they are active (its sender checks the dose); a planned dose no longer
        # wanted is cancelled.
        await sync_pending(session, participant.id, MED_REMINDER, wanted, now,
                           cancel=lambda row: not active or "dose_id" not in row.payload,
                           why="participant not active or reminder changed")
