"""The seam between settings changes and the scheduling engine.

When a participant's time zone, check-in time, quiet hours or status changes, their future rows
must be recomputed in the same transaction. The scheduling engine plugs in here.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant


async def participant_schedule_changed(session: AsyncSession, ctx: AppContext, participant: Participant) -> None:
    for planner in ctx.replanners:  # check-ins, session reminders, daily read (their install_* add them)
        await planner.replan_participant(session, participant, ctx.clock.now())
