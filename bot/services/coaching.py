"""A recovery coach's view of their caseload: goals and medication reminders first.

A coach "checks in regularly, reminds you of your goals": so under each name in a coach's
/caseload come the participant's open goals with their weekly ratings and the last week's
medication reminders taken (only if the participant agreed in /meds that their care team sees
them), before the check-in and questionnaire lines a therapist reads first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Staff, StaffRole
from bot.services.caseload import CaseloadRow
from bot.services.goals.summary import goal_lines, goal_progress
from bot.services.medications.summary import adherence, adherence_line, adherence_shared
from bot.services.staff_time import staff_zone

ADHERENCE_DAYS = 7


def sees_coach_view(staff: Staff) -> bool:
    return staff.role == StaffRole.COACH


async def coach_lines(ctx: AppContext, session: AsyncSession, staff: Staff, rows: Sequence[CaseloadRow],
                      now: datetime) -> dict[int, list[str]]:
    """Per participant: open goals with their trajectory, then last week's medication reminders."""
    zone, locale = staff_zone(ctx, staff), staff.locale
    since = now - timedelta(days=ADHERENCE_DAYS)
    lines: dict[int, list[str]] = {}
    for row in rows:
        goals = [g for g in await goal_progress(session, row.participant_id, now) if not g.done]
        found = goal_lines(ctx, goals, locale, zone) or [ctx.t("coach.no_goals", locale, alias=row.alias)]
        medication = (adherence_line(ctx, await adherence(session, row.participant_id, since, now), locale)
                      if await adherence_shared(session, row.participant_id) else None)  # only with consent
        lines[row.participant_id] = [*found, *([medication] if medication else [])]
    return lines
