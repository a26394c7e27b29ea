"""What other features add to a participant's brief: goals and medication reminders, and the chart.

Goals are in the participant's own words, and medication reminders are shared only with the
participant's consent, so both appear only in a brief of that participant (an individual or family
session, read by its facilitator and their clinician), never in a group's brief, which goes to a
facilitator who may not be on their care team.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant
from bot.services.charts.service import trend_chart
from bot.services.goals.summary import goal_lines, goal_progress
from bot.services.medications.summary import adherence, adherence_line, adherence_shared


async def goals_section(ctx: AppContext, session: AsyncSession, participant: Participant, since: datetime,
                        until: datetime, locale: str) -> list[str]:
    """Each open goal (and any done since the last session) with its weekly ratings."""
    return goal_lines(ctx, await goal_progress(session, participant.id, since), locale)


async def medication_section(ctx: AppContext, session: AsyncSession, participant: Participant, since: datetime,
                             until: datetime, locale: str) -> list[str]:
    """"Medication reminders: 12 of 14 taken (2 missed)", when the participant set any up and agreed
    in /meds that their care team sees them."""
    if not await adherence_shared(session, participant.id):
        return []
    line = adherence_line(ctx, await adherence(session, participant.id, since, until), locale)
    return [line] if line else []


async def chart(ctx: AppContext, session: AsyncSession, participant: Participant, now: datetime,
                locale: str) -> tuple[bytes, str]:
    return await trend_chart(ctx, session, participant, now, locale)
