"""Planning medication reminders at scale, on SQLite and PostgreSQL: 1,000 reminders with two times
each plan all their doses in one planning round (PostgreSQL takes at most 32,767 arguments in one
statement, so the rows are inserted in chunks), and a second round adds none."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.medication_models import MED_REMINDER, MedicationReminder
from bot.db.models import ScheduledAction
from bot.services.medications.planner import MedicationPlanner
from bot.services.medications.schedule import ALL_DAYS, days_to_text
from tests.support.inproc import add_participant, add_staff

PARTICIPANTS, REMINDERS_EACH = 20, 50


async def test_a_thousand_reminders_with_two_times_plan_in_one_round(ctx: AppContext, clock: ManualClock) -> None:
    ctx.settings = ctx.settings.replace(medications=dataclasses.replace(ctx.settings.medications, enabled=True))
    clock.set(datetime(2026, 3, 2, 10, tzinfo=UTC))
    now = clock.now()
    async with ctx.sessionmaker() as s:
        dr = await add_staff(s, "dr-lee", 900_001, now)
        for n in range(PARTICIPANTS):
            p = await add_participant(s, f"P-{n}", dr, 5_000 + n, now)
            s.add_all(MedicationReminder(participant_id=p.id, name=None, times="08:00,20:00",
                                         days=days_to_text(set(ALL_DAYS)), created_at=now)
                      for _ in range(REMINDERS_EACH))
        await s.commit()
    planner = MedicationPlanner(ctx)
    created = await planner.plan(now)
    async with ctx.sessionmaker() as s:
        rows = await s.scalar(select(func.count()).select_from(ScheduledAction)
                              .where(ScheduledAction.kind == MED_REMINDER))
    assert created == rows
    assert rows is not None and rows > 4_000  # 2,000 doses a day over the days planned ahead
    assert await planner.plan(now) == 0
