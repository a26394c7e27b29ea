"""Wiring of medications into a running bot: called once by `bot.runtime.assemble`.

Registers the `med_reminder` sender, adds the planner to `ctx.parts` and to the planners
`participant_schedule_changed` tells (so /pause, /resume and a new time zone move the reminders),
and a step before each tick that closes unanswered doses as missed and plans the coming ones.
"""

from __future__ import annotations

from datetime import datetime

from bot.context import AppContext
from bot.db.medication_models import MED_REMINDER
from bot.services.medications.planner import MedicationPlanner
from bot.services.medications.service import close_missed, send_reminder
from bot.services.scheduling.outbox import OutboxWorker


def install_medications(ctx: AppContext, worker: OutboxWorker | None = None) -> MedicationPlanner:
    planner = ctx.parts.add(MedicationPlanner(ctx))
    ctx.replanners.append(planner)
    if worker is not None:
        async def tick(now: datetime) -> None:
            await close_missed(ctx, now)
            await planner.tick(now)

        worker.register(MED_REMINDER, send_reminder)
        worker.add_planner("medication reminders", tick)
    return planner
