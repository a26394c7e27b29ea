"""Goals and their trajectory as a clinician reads them: for /goal ALIAS, the pre-session brief
and the caseload.

- `goal_progress(session, participant_id, since)`: each open goal, and each goal done since
  `since` (every done goal when None), with all its ratings in time order.
- `open_goal_progress(session, participant_ids)`: the open goals of many participants at once
  (a coach's /goal over the whole caseload), in two queries.
- `goal_lines(ctx, progress, locale)`: one short line per goal, "Goal: Walk daily · 3 → 5 → 6
  (last: 2 days ago)", words from content/<locale>/ui/goals.toml.

Values and whether a line was written, never the line itself: a brief or a caseload that wants
the participant's words asks for them (and discloses them) on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.goal_models import Goal, GoalRating, GoalStatus

POINTS = 8  # ratings shown in a trajectory: two months of weeks fit on a phone's line
ARROW = " → "


class RatingPoint(NamedTuple):
    at: datetime
    value: int
    has_note: bool


@dataclass(frozen=True)
class GoalProgress:
    goal_id: int
    text: str
    done: bool
    created_at: datetime
    done_at: datetime | None
    ratings: tuple[RatingPoint, ...]  # oldest first

    @property
    def last(self) -> RatingPoint | None:
        return self.ratings[-1] if self.ratings else None


async def goal_progress(session: AsyncSession, participant_id: int, since: datetime | None = None
                        ) -> list[GoalProgress]:
    """The participant's open goals and the goals done since `since` (all done ones when None), in
    the order they were added, each with its ratings in time order."""
    done_since = Goal.status == GoalStatus.DONE if since is None else Goal.done_at >= since
    goals = (await session.scalars(
        select(Goal).where(Goal.participant_id == participant_id, or_(Goal.status == GoalStatus.OPEN, done_since))
        .order_by(Goal.created_at, Goal.id))).all()
    return await _with_ratings(session, goals)


async def open_goal_progress(session: AsyncSession, participant_ids: Sequence[int]
                             ) -> dict[int, list[GoalProgress]]:
    """The open goals of many participants at once (a clinician's overview), in two queries."""
    if not participant_ids:
        return {}
    goals = (await session.scalars(
        select(Goal).where(Goal.participant_id.in_(participant_ids), Goal.status == GoalStatus.OPEN)
        .order_by(Goal.created_at, Goal.id))).all()
    owner = {g.id: g.participant_id for g in goals}
    found: dict[int, list[GoalProgress]] = {}
    for progress in await _with_ratings(session, goals):
        found.setdefault(owner[progress.goal_id], []).append(progress)
    return found


async def _with_ratings(session: AsyncSession, goals: Sequence[Goal]) -> list[GoalProgress]:
    if not goals:
        return []
    ratings = (await session.execute(
        select(GoalRating.goal_id, GoalRating.rated_at, GoalRating.value, GoalRating.note.is_not(None))
        .where(GoalRating.goal_id.in_([g.id for g in goals]))
        .order_by(GoalRating.rated_at, GoalRating.id))).all()
    points: dict[int, list[RatingPoint]] = {}
    for goal_id, at, value, has_note in ratings:
        points.setdefault(goal_id, []).append(RatingPoint(at, value, bool(has_note)))
    return [GoalProgress(g.id, g.text, g.status == GoalStatus.DONE, g.created_at, g.done_at,
                         tuple(points.get(g.id, ()))) for g in goals]


def trajectory(ratings: Sequence[RatingPoint], points: int = POINTS) -> str:
    """"3 → 5 → 6": the last `points` ratings, oldest first."""
    return ARROW.join(str(r.value) for r in ratings[-points:])


def days_ago(ctx: AppContext, moment: datetime, locale: str, zone: ZoneInfo) -> str:
    """"today", "yesterday", "5 days ago", counted in calendar days of `zone`."""
    days = (ctx.clock.now().astimezone(zone).date() - moment.astimezone(zone).date()).days
    if days <= 0:
        return ctx.t("goal.today", locale)
    if days == 1:
        return ctx.t("goal.yesterday", locale)
    return ctx.t("goal.days_ago", locale, days=days)


def goal_lines(ctx: AppContext, progress: list[GoalProgress], locale: str, zone: ZoneInfo | None = None
               ) -> list[str]:
    """One short line per goal for a clinician, open goals first: "Goal: Walk daily · 3 → 5 → 6
    (last: 2 days ago)". `zone`: where "today" is (default: the program's time zone)."""
    zone = zone or ZoneInfo(ctx.settings.program.default_timezone)
    lines = []
    for goal in sorted(progress, key=lambda g: g.done):
        if goal.done:
            key = "goal.line_done" if goal.ratings else "goal.line_done_none"
            lines.append(ctx.t(key, locale, text=goal.text, trajectory=trajectory(goal.ratings)))
        elif goal.last is None:
            lines.append(ctx.t("goal.line_none", locale, text=goal.text))
        else:
            last = ctx.t("goal.last", locale, when=days_ago(ctx, goal.last.at, locale, zone))
            lines.append(ctx.t("goal.line", locale, text=goal.text, trajectory=trajectory(goal.ratings), last=last))
    return lines
