"""A participant's goals: adding, changing, marking done, reading. No Telegram, no words.

- At most `MAX_OPEN` goals are open at a time (three: few enough to remember in a hard week);
  done goals are kept with their ratings, for the care team's view and the participant's export.
- The participant keeps them alone (/goals) or with their clinician (/goal ALIAS): every change
  records who made it ("participant:7", "staff:3"), ids only.
- A goal's words are free text, encrypted at rest (`EncryptedText`); they were assessed by the
  safety gate before they got here, like every message a participant types.
- Adding the first goal or closing the last one tells the weekly planner in the same transaction,
  so the prompt is planned (or cancelled) at once, not at the next planning round.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.goal_models import Goal, GoalRating, GoalStatus
from bot.db.models import ENROLLED, Participant, ScheduledAction
from bot.messaging import Messenger, say
from bot.services.calendar.occurrences import quiet_window
from bot.services.goals.planner import GoalPlanner
from bot.services.scheduling.outbox import Delivered, Skip
from bot.services.scheduling.rows import enqueue

MAX_OPEN = 3
MAX_CHARS = 200  # a goal is a few words; a long text is a note, not a goal
CHANGE_NOTICE = "goal_change_notice"  # "Your care team added a goal with you", after quiet hours
NOTICE_KEYS = {"add": "goals.team_added", "edit": "goals.team_edited", "done": "goals.team_done"}


class Change(enum.Enum):
    DONE = "done"
    FULL = "full"  # three goals open already
    TOO_LONG = "too_long"
    EMPTY = "empty"
    GONE = "gone"  # not this participant's open goal (an old button, a goal done meanwhile)
    NOT_ENROLLED = "not_enrolled"  # declined consent, stopped, discharged or not joined: nothing is stored


def clean_text(text: str) -> str:
    """One line of plain words: whitespace collapsed (line breaks too), nothing else changed."""
    return " ".join(text.split())


def check_text(text: str) -> Change | None:
    if not text:
        return Change.EMPTY
    if len(text) > MAX_CHARS:
        return Change.TOO_LONG
    return None


async def open_goals(session: AsyncSession, participant_id: int) -> Sequence[Goal]:
    """The participant's open goals in the order they were added: the numbers people see (1, 2, 3)."""
    return (await session.scalars(select(Goal).where(Goal.participant_id == participant_id,
                                                     Goal.status == GoalStatus.OPEN)
                                  .order_by(Goal.created_at, Goal.id))).all()


async def count_open(session: AsyncSession, participant_id: int) -> int:
    return int(await session.scalar(select(func.count(Goal.id)).where(
        Goal.participant_id == participant_id, Goal.status == GoalStatus.OPEN)) or 0)


async def open_goal(session: AsyncSession, participant_id: int, goal_id: int) -> Goal | None:
    """The goal if it is this participant's and still open (a button's goal id is not trusted)."""
    goal = await session.get(Goal, goal_id)
    if goal is None or goal.participant_id != participant_id or goal.status != GoalStatus.OPEN:
        return None
    return goal


async def _schedule_changed(session: AsyncSession, ctx: AppContext, participant: Participant) -> None:
    # Only the goal planner: a goal changes nothing else of the participant's schedule.
    planner = ctx.parts.find(GoalPlanner)
    if planner is not None:
        await planner.replan_participant(session, participant, ctx.clock.now())


async def add_goal(session: AsyncSession, ctx: AppContext, participant: Participant, text: str, by: str
                   ) -> tuple[Change, Goal | None]:
    """A new open goal in `text` (cleaned), unless three are open, the text is empty or too long, or
    the participant is not enrolled."""
    if participant.status not in ENROLLED:
        return Change.NOT_ENROLLED, None
    text = clean_text(text)
    problem = check_text(text)
    if problem is not None:
        return problem, None
    if await count_open(session, participant.id) >= MAX_OPEN:
        return Change.FULL, None
    now = ctx.clock.now()
    goal = Goal(participant_id=participant.id, text=text, status=GoalStatus.OPEN, created_by=by, created_at=now)
    session.add(goal)
    await session.flush()
    await _schedule_changed(session, ctx, participant)
    return Change.DONE, goal


async def edit_goal(session: AsyncSession, ctx: AppContext, participant: Participant, goal_id: int, text: str,
                    by: str) -> tuple[Change, Goal | None]:
    """New words for an open goal; its ratings stay with it."""
    if participant.status not in ENROLLED:
        return Change.NOT_ENROLLED, None
    text = clean_text(text)
    problem = check_text(text)
    if problem is not None:
        return problem, None
    goal = await open_goal(session, participant.id, goal_id)
    if goal is None:
        return Change.GONE, None
    goal.text, goal.updated_by, goal.updated_at = text, by, ctx.clock.now()
    return Change.DONE, goal


async def mark_done(session: AsyncSession, ctx: AppContext, participant: Participant, goal_id: int, by: str
                    ) -> tuple[Change, Goal | None]:
    """Close an open goal (kept, with its ratings); the weekly prompt stops when none is open."""
    if participant.status not in ENROLLED:
        return Change.NOT_ENROLLED, None
    goal = await open_goal(session, participant.id, goal_id)
    if goal is None:
        return Change.GONE, None
    goal.status, goal.done_by, goal.done_at = GoalStatus.DONE, by, ctx.clock.now()
    await session.flush()
    await _schedule_changed(session, ctx, participant)
    return Change.DONE, goal


async def goals_for_export(session: AsyncSession, participant_id: int) -> list[dict[str, Any]]:
    """A participant's own goals and ratings, oldest first (for /mydata)."""
    goals = (await session.scalars(select(Goal).where(Goal.participant_id == participant_id)
                                   .order_by(Goal.created_at, Goal.id))).all()
    ratings = (await session.scalars(select(GoalRating).where(GoalRating.participant_id == participant_id)
                                     .order_by(GoalRating.rated_at, GoalRating.id))).all()

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return [{"goal": g.text, "status": g.status, "added_at": iso(g.created_at), "done_at": iso(g.done_at),
             "ratings": [{"rated_at": iso(r.rated_at), "value": r.value, "note": r.note}
                         for r in ratings if r.goal_id == g.id]} for g in goals]


async def tell_participant_of_change(session: AsyncSession, ctx: AppContext, participant: Participant,
                                     goal: Goal, action: str) -> bool:
    """Plan the participant's notice of a change staff made with them ("add", "edit", "done"):
    through the outbox, after their quiet hours if they are in them. False (nothing planned)
    while they are paused or unreachable. The row holds ids only; the words are read when sent."""
    if not participant.receives_messages or participant.chat_id is None:
        return False
    now = ctx.clock.now()
    quiet = quiet_window(participant, now)
    await enqueue(session, kind=CHANGE_NOTICE, key=f"goal_change:{goal.id}:{action}:{now:%Y%m%dT%H%M%S%f}",
                  due_at=quiet[1] if quiet else now, now=now, participant_id=participant.id,
                  payload={"goal_id": goal.id, "action": action})
    return True


async def send_change_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                             row: ScheduledAction) -> Delivered:
    """ActionSender for `goal_change_notice` rows: the goal's words as they are when it goes."""
    participant = await session.get(Participant, row.participant_id or 0)
    goal = await session.get(Goal, int(row.payload.get("goal_id", 0)))
    key = NOTICE_KEYS.get(str(row.payload.get("action")))
    if participant is None or goal is None or key is None:
        raise Skip("goal or participant gone")
    if not participant.receives_messages or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    sent = await say(messenger, participant.chat_id, ctx.t(key, participant.locale, text=goal.text))
    return Delivered(sent.chat_id, sent.message_id)
