"""What /goals (the participant) and /goal ALIAS (their clinician) show: words and buttons as
plain data (bot/messaging.py), from content/<locale>/ui/goals.toml.

Buttons carry ids only, never words: `goal:<action>[:<goal id>]` for the participant,
`sgoal:<action>:<id>` for staff (a participant id for "add", a goal id otherwise). Whoever presses
one is checked again; a button is not a permission.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS
from bot.content.render import pack_html
from bot.context import AppContext
from bot.db.goal_models import GoalRating
from bot.messaging import Choice, Keyboard, keyboard
from bot.services.calendar.reminders import day_text
from bot.services.goals.service import MAX_OPEN
from bot.services.goals.summary import POINTS, GoalProgress, days_ago, goal_lines, trajectory

DONE_SHOWN_DAYS = 28  # goals done this recently still show in the clinician's view

# --- the participant ------------------------------------------------------------------------------


def weekday_name(ctx: AppContext, locale: str) -> str:
    return ctx.t("goals.days", locale).split()[WEEKDAYS.index(ctx.settings.goals.day)]


def participant_view(ctx: AppContext, progress: list[GoalProgress], locale: str) -> tuple[str, Keyboard]:
    """The participant's open goals, numbered, with their ratings so far, and the buttons."""
    goals = [g for g in progress if not g.done]
    parts = [ctx.t("goals.title", locale)]
    if not goals:
        parts.append(ctx.t("goals.empty", locale, limit=MAX_OPEN))
    else:
        rows = []
        for number, goal in enumerate(goals, 1):
            if goal.ratings:
                rows.append(ctx.t("goals.row_ratings", locale, number=number, text=goal.text,
                                  trajectory=trajectory(goal.ratings)))
            else:
                rows.append(ctx.t("goals.row", locale, number=number, text=goal.text))
        parts.append("\n".join(rows))
    if ctx.settings.goals.enabled:
        parts.append(ctx.t("goals.footer", locale, day=weekday_name(ctx, locale)))
    if len(goals) >= MAX_OPEN:
        parts.append(ctx.t("goals.full", locale, limit=MAX_OPEN))
    buttons: list[list[Choice]] = [[(ctx.t("goals.edit", locale, number=n), f"goal:edit:{g.goal_id}"),
                                    (ctx.t("goals.done", locale, number=n), f"goal:done:{g.goal_id}")]
                                   for n, g in enumerate(goals, 1)]
    if len(goals) < MAX_OPEN:
        buttons.append([(ctx.t("goals.add", locale), "goal:add")])
    return "\n\n".join(parts), keyboard(buttons)


def cancel_keyboard(ctx: AppContext, locale: str, *, staff: bool) -> Keyboard:
    return keyboard([[(ctx.t("goals.cancel", locale), "sgoal:cancel" if staff else "goal:cancel")]])


def confirm_done_keyboard(ctx: AppContext, locale: str, goal_id: int, *, staff: bool) -> Keyboard:
    prefix = "sgoal" if staff else "goal"
    return keyboard([[(ctx.t("goals.yes_done", locale), f"{prefix}:yes:{goal_id}"),
                      (ctx.t("goals.not_yet", locale), f"{prefix}:keep:{goal_id}")]])


# --- the clinician --------------------------------------------------------------------------------


async def latest_notes(session: AsyncSession, progress: list[GoalProgress]) -> dict[int, str]:
    """Each goal's newest line among its last POINTS ratings (free text, decrypted)."""
    ids = [g.goal_id for g in progress if any(r.has_note for r in g.ratings[-POINTS:])]
    if not ids:
        return {}
    notes: dict[int, str] = {}
    rows = (await session.execute(
        select(GoalRating.goal_id, GoalRating.note).where(GoalRating.goal_id.in_(ids), GoalRating.note.is_not(None))
        .order_by(GoalRating.rated_at.desc(), GoalRating.id.desc()))).all()
    for goal_id, note in rows:
        if note:
            notes.setdefault(goal_id, note)
    return notes


def staff_view(ctx: AppContext, alias: str, participant_id: int, progress: list[GoalProgress],
               notes: Mapping[int, str], locale: str, zone: ZoneInfo) -> tuple[str, Keyboard]:
    """A participant's goals for their clinician: each open goal's trajectory and when it was last
    rated, its newest line, the goals done lately, and buttons to change them with the participant."""
    now = ctx.clock.now()
    goals = [g for g in progress if not g.done]
    done = [g for g in progress if g.done and g.done_at is not None
            and g.done_at >= now - timedelta(days=DONE_SHOWN_DAYS)]
    parts = [ctx.t("goal.title", locale, alias=alias)]
    if not goals:
        parts.append(ctx.t("goal.empty", locale, alias=alias))
    else:
        rows = []
        for number, goal in enumerate(goals, 1):
            if goal.last is None:
                rows.append(ctx.t("goal.row_none", locale, number=number, text=goal.text))
            else:
                last = ctx.t("goal.last", locale, when=days_ago(ctx, goal.last.at, locale, zone))
                rows.append(ctx.t("goal.row", locale, number=number, text=goal.text,
                                  trajectory=trajectory(goal.ratings), last=last))
            if goal.goal_id in notes:
                rows.append(ctx.t("goal.note", locale, note=notes[goal.goal_id]))
        parts.append("\n".join(rows))
    if done:
        rows = [ctx.t("goal.done_title", locale, days=DONE_SHOWN_DAYS)]
        for goal in done:
            assert goal.done_at is not None
            day = day_text(ctx, goal.done_at, zone.key, locale)
            if goal.ratings:
                rows.append(ctx.t("goal.done_row", locale, text=goal.text, trajectory=trajectory(goal.ratings),
                                  day=day))
            else:
                rows.append(ctx.t("goal.done_row_none", locale, text=goal.text, day=day))
        parts.append("\n".join(rows))
    parts.append(ctx.t("goal.commands", locale, alias=alias))
    buttons: list[list[Choice]] = [[(ctx.t("goal.edit", locale, number=n), f"sgoal:edit:{g.goal_id}"),
                                    (ctx.t("goal.done", locale, number=n), f"sgoal:done:{g.goal_id}")]
                                   for n, g in enumerate(goals, 1)]
    if len(goals) < MAX_OPEN:
        buttons.append([(ctx.t("goal.add", locale), f"sgoal:add:{participant_id}")])
    return "\n\n".join(parts), keyboard(buttons)


def overview_messages(ctx: AppContext, people: Sequence[tuple[str, list[GoalProgress]]], locale: str,
                      zone: ZoneInfo, example: str) -> list[str]:
    """Every visible participant's open goals, one block each (`people`: alias and goals, in the
    order to show), and who has none yet: a coach's look over the whole caseload."""
    with_goals = [(alias, progress) for alias, progress in people if progress]
    without = [alias for alias, progress in people if not progress]
    paragraphs = [ctx.t("goal.overview_title", locale, count=len(with_goals))]
    for alias, progress in with_goals:
        lines = goal_lines(ctx, progress, locale, zone)
        paragraphs.append("\n".join([ctx.t("goal.overview_person", locale, alias=alias), *lines]))
    if without:
        paragraphs.append(ctx.t("goal.overview_without", locale, aliases=", ".join(without)))
    paragraphs.append(ctx.t("goal.usage", locale, example=example))
    return pack_html(paragraphs)
