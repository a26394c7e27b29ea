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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.medication_models import MED_REMINDER, MedicationReminder
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.services.medications.schedule import days_from_text, planned_doses, times_from_text
from bot.services.scheduling.rows import insert_new

log = logging.getLogger(__name__)

AHEAD_DAYS = 2  # today, tomorrow and the day after
PAGE = 1000  # reminders per planning round trip


def wanted_rows(reminder_id: int, participant_id: int, times: str, days: str, timezone: str,
                now: datetime) -> list[dict[str, Any]]:
    """The rows (as insert values) of one reminder's coming doses."""
    return [dict(kind=MED_REMINDER, key=d.key, due_at=d.due, intended_at=d.due, status=ActionStatus.PENDING,
                 participant_id=participant_id, created_at=now, attempts=0,
                 payload={"reminder_id": reminder_id, "date": d.day.isoformat(), "time": d.at})
            for d in planned_doses(reminder_id, times_from_text(times), days_from_text(days), timezone, now,
                                   AHEAD_DAYS)]


class MedicationPlanner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_plan: datetime | None = None

    async def tick(self, now: datetime) -> None:
        """From the scheduler tick: plan when it is time (the rows are idempotent on their key)."""
        if not self.ctx.settings.medications.enabled:
            return
        interval = timedelta(minutes=self.ctx.settings.schedule.plan_interval_minutes)
        if self._last_plan is None or now - self._last_plan >= interval or now < self._last_plan:
            created = await self.plan(now)
            self._last_plan = now
            if created:
                log.info("planned %s medication reminder rows", created)

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active reminder of every active participant."""
        after, created = 0, 0
        while True:
            async with self.ctx.sessionmaker() as session:
                reminders = (await session.execute(
                    select(MedicationReminder.id, MedicationReminder.participant_id, MedicationReminder.times,
                           MedicationReminder.days, Participant.timezone)
                    .join(Participant, Participant.id == MedicationReminder.participant_id)
                    .where(MedicationReminder.removed_at.is_(None), MedicationReminder.paused_at.is_(None),
                           Participant.status == ParticipantStatus.ACTIVE, Participant.unreachable_at.is_(None),
                           Participant.chat_id.is_not(None), MedicationReminder.id > after)
                    .order_by(MedicationReminder.id).limit(PAGE))).all()
                if not reminders:
                    return created
                after = reminders[-1].id
                rows = [row for r in reminders
                        for row in wanted_rows(r.id, r.participant_id, r.times, r.days, r.timezone, now)]
                have = set((await session.scalars(select(ScheduledAction.key).where(
                    ScheduledAction.key.in_([r["key"] for r in rows])))).all()) if rows else set()
                created += await insert_new(session, [r for r in rows if r["key"] not in have])
                await session.commit()

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
        rows = (await session.scalars(select(ScheduledAction).where(
            ScheduledAction.participant_id == participant.id, ScheduledAction.kind == MED_REMINDER,
            (ScheduledAction.status == ActionStatus.PENDING) | ScheduledAction.key.in_(list(wanted))))).all()
        for row in rows:
            want = wanted.pop(row.key, None)
            if row.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
                continue  # that dose's reminder went out (or is going out)
            if want is None:
                # A snooze stays while they are active (its sender checks the dose); a planned dose
                # no longer wanted is cancelled.
                snooze = "dose_id" in row.payload
                if row.status == ActionStatus.PENDING and (not active or not snooze):
                    row.status, row.last_error = ActionStatus.CANCELLED, "participant not active or reminder changed"
            else:
                row.status, row.due_at, row.intended_at = ActionStatus.PENDING, want["due_at"], want["intended_at"]
                row.payload = want["payload"]
                row.last_error, row.attempts, row.lease_until, row.claimed_by = None, 0, None, None
        if wanted:
            await insert_new(session, list(wanted.values()))
