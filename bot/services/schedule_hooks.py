"""The seam between settings changes and the scheduling engine.

When a participant's time zone, check-in time, quiet hours or status changes, their future rows
must be recomputed in the same transaction. The scheduling engine plugs in here.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Participant
from bot.services.context import AppContext


async def participant_schedule_changed(session: AsyncSession, ctx: AppContext, participant: Participant) -> None:
    for name in ("planner", "calendar_planner", "content_planner"):  # check-ins, session reminders, daily read
        planner = ctx.extras.get(name)
        if planner is not None:
            await planner.replan_participant(session, participant, ctx.clock.now())
