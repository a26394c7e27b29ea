"""The weekly goal progress prompt, run by the flow engine: per open goal a 0-10 rating with
buttons, then an optional line (Skip), one goal after the other.

- The `goal_progress` row of a local date (planned by services/goals/planner.py) opens a FlowRun
  of kind `goal_progress`. Its flow id names the goals asked, in order (`goals:12.13`), and the
  goals' words are copied into the run's answers (encrypted at rest, like every answer), so the
  steps read the same after a restart even if a goal is changed meanwhile.
- Each rating is stored at once (`GoalRating`), the line with it; a prompt left half-way keeps what
  was rated. A rating can be skipped too: in a hard week "not now" is an answer.
- At most weekly: a goal rated in the last `MIN_DAYS_BETWEEN` days is not asked again, even if a
  change of day or time zone brings a row early.
- Typed lines are messages like any other: the safety gate assessed them before they got here. A
  crisis message while the prompt is open closes it (`close_after_crisis`): no more questions then.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.goal_models import GOAL_PROGRESS, Goal, GoalRating
from bot.db.models import ActionStatus, Participant, ScheduledAction
from bot.flows.engine import FlowEngine, FlowStep, StepKind, Turn, read_answers
from bot.messaging import Messenger, say
from bot.services.goals.service import open_goals
from bot.services.scheduling.outbox import Delivered, Skip

log = logging.getLogger(__name__)

MIN_DAYS_BETWEEN = 6  # a week, less a day of slack for a moved day or time zone
EXPIRE_HOURS = 24  # an unanswered prompt closes after a day (its ratings so far are kept)
NOTE_CHARS = 500
FLOW_PREFIX = "goals:"
SNAPSHOT = "_goals"  # the goals' words in the run's answers: {"12": "Walk daily"}
RATE, NOTE = "r", "n"
_NUMBER = re.compile(r"\s*(\d{1,2})\s*(?:/\s*10)?\s*[.!]?\s*")


def _engine(ctx: AppContext) -> FlowEngine:
    return ctx.parts.get(FlowEngine)


def goal_ids(flow_id: str) -> list[int]:
    if not flow_id.startswith(FLOW_PREFIX):
        return []
    return [int(part) for part in flow_id[len(FLOW_PREFIX):].split(".") if part.isdigit()]


def _step_goal(step_id: str) -> tuple[str, int] | None:
    if len(step_id) < 2 or step_id[0] not in (RATE, NOTE) or not step_id[1:].isdigit():
        return None
    return step_id[0], int(step_id[1:])


class GoalSteps:
    """The prompt's steps for one run: r<goal> (0-10, Skip) then n<goal> (a typed line, Skip)."""

    def __init__(self, ctx: AppContext, locale: str, goals: list[tuple[int, str]]) -> None:
        self.ctx, self.locale, self.goals = ctx, locale, goals
        self._order = [goal_id for goal_id, _ in goals]
        self._text = dict(goals)

    def _rate(self, goal_id: int) -> FlowStep:
        skip = self.ctx.t("flow.skip", self.locale)
        choices = tuple((str(n), str(n)) for n in range(11))
        return FlowStep(f"{RATE}{goal_id}", StepKind.CHOICE,
                        self.ctx.t("goals.rate", self.locale, text=self._text[goal_id]), choices, 6, skip,
                        True, 0, 10)

    def _note(self, goal_id: int) -> FlowStep:
        return FlowStep(f"{NOTE}{goal_id}", StepKind.FREE_TEXT,
                        self.ctx.t("goals.ask_note", self.locale, text=self._text[goal_id]), (), 1,
                        self.ctx.t("flow.skip", self.locale))

    def first_step(self) -> str:
        return f"{RATE}{self._order[0]}"

    def step(self, step_id: str) -> FlowStep | None:
        found = _step_goal(step_id)
        if found is None or found[1] not in self._text:
            return None
        return self._rate(found[1]) if found[0] == RATE else self._note(found[1])

    def next_step(self, step_id: str, value: Any) -> str | None:
        found = _step_goal(step_id)
        if found is None or found[1] not in self._text:
            return None
        kind, goal_id = found
        if kind == RATE and value is not None:
            return f"{NOTE}{goal_id}"  # a skipped rating needs no line
        later = self._order[self._order.index(goal_id) + 1:]
        return f"{RATE}{later[0]}" if later else None

    def parse_text(self, step_id: str, text: str) -> tuple[bool, Any]:
        found = _step_goal(step_id)
        if found is None:
            return False, None
        if found[0] == NOTE:
            line = " ".join((text or "").split())
            return (True, line[:NOTE_CHARS]) if line else (False, None)
        match = _NUMBER.fullmatch(text or "")
        if match is None or not 0 <= int(match.group(1)) <= 10:
            return False, None  # not a rating: the fallback keeps it as a note for the care team
        return True, float(match.group(1))

    def progress(self, step_id: str) -> tuple[int, int] | None:
        found = _step_goal(step_id)
        if found is None or found[1] not in self._text:
            return None
        return self._order.index(found[1]) + 1, len(self._order)


class GoalProgressFlow:
    """The FlowKind of the weekly prompt: the engine calls these hooks."""

    name = GOAL_PROGRESS

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def definition(self, run: FlowRun) -> GoalSteps | None:
        ids = goal_ids(run.flow_id)
        if not ids:
            return None
        words = read_answers(run).get(SNAPSHOT)
        words = words if isinstance(words, dict) else {}
        fallback = self.ctx.t("goals.title", run.locale)  # only if the words could not be read
        return GoalSteps(self.ctx, run.locale, [(i, str(words.get(str(i)) or fallback)) for i in ids])

    async def on_answer(self, turn: Turn, step: FlowStep, value: Any) -> None:
        found = _step_goal(step.id)
        if found is None or value is None:
            return
        kind, goal_id = found
        run, now = turn.run, turn.ctx.clock.now()
        if kind == RATE:
            turn.session.add(GoalRating(goal_id=goal_id, participant_id=turn.participant.id, run_id=run.id,
                                        local_date=run.local_date, value=int(value), rated_at=now))
            await turn.session.flush()
            return
        await turn.session.execute(
            update(GoalRating).where(GoalRating.run_id == run.id, GoalRating.goal_id == goal_id)
            .values(note=str(value)).execution_options(synchronize_session=False))

    async def on_finish(self, turn: Turn) -> None:
        run, participant, now = turn.run, turn.participant, turn.ctx.clock.now()
        if participant.chat_id is not None:
            turn.replies.text(participant.chat_id, turn.ctx.t("goals.weekly_done", participant.locale))
        await _mark_answered(turn.session, run, now)


async def _mark_answered(session: AsyncSession, run: FlowRun, now: datetime) -> None:
    if run.action_id is not None:
        await session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id == run.action_id, ScheduledAction.status != ActionStatus.ANSWERED)
            .values(status=ActionStatus.ANSWERED, answered_at=now, lease_until=None)
            .execution_options(synchronize_session=False))


async def recently_rated(session: AsyncSession, participant_id: int, now: datetime) -> set[int]:
    """The goals this participant rated in the last MIN_DAYS_BETWEEN days."""
    since = now - timedelta(days=MIN_DAYS_BETWEEN)
    return set((await session.scalars(select(GoalRating.goal_id).where(
        GoalRating.participant_id == participant_id, GoalRating.rated_at > since))).all())


async def start_prompt(session: AsyncSession, ctx: AppContext, participant: Participant, goals: list[Goal],
                       day: date | None, action_id: int | None, now: datetime) -> FlowRun:
    """A new prompt for `goals` (in order); an earlier one still open is closed (its ratings are kept)."""
    engine = _engine(ctx)
    open_runs = await engine.active_runs(session, participant.id, GOAL_PROGRESS)
    await engine.close(session, [r.id for r in open_runs], FlowStatus.ABANDONED, now)
    run = await engine.start(session, participant, GOAL_PROGRESS, FLOW_PREFIX + ".".join(str(g.id) for g in goals),
                             now=now, expires_at=now + timedelta(hours=EXPIRE_HOURS), local_date=day,
                             action_id=action_id)
    run.answers = json.dumps({SNAPSHOT: {str(g.id): g.text for g in goals}})
    return run


async def send_goal_progress(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                             row: ScheduledAction) -> Delivered:
    """ActionSender for `goal_progress` rows: open the week's prompt and ask about the first goal."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or not participant.receives_messages or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    if not ctx.settings.goals.enabled:
        raise Skip("goal prompts are off ([goals] enabled = false)")
    now = ctx.clock.now()
    rated = await recently_rated(session, participant.id, now)
    goals = [g for g in await open_goals(session, participant.id) if g.id not in rated]
    if not goals:
        raise Skip(f"no open goal, or all rated in the last {MIN_DAYS_BETWEEN} days")
    day = date.fromisoformat(str(row.payload["date"])) if row.payload.get("date") else None
    run = await start_prompt(session, ctx, participant, goals, day, row.id, now)
    text, kb = _engine(ctx).render(run, lead=ctx.t("goals.weekly_lead", participant.locale))
    message = await say(messenger, participant.chat_id, text, kb)
    return Delivered(participant.chat_id, message.message_id)


async def close_after_crisis(session: AsyncSession, ctx: AppContext, participant: Participant) -> bool:
    """A crisis message came while the weekly prompt was open: close it (ratings so far are kept).
    Returns whether one was open."""
    engine = _engine(ctx)
    runs = await engine.active_runs(session, participant.id, GOAL_PROGRESS)
    await engine.close(session, [r.id for r in runs], FlowStatus.ABANDONED, ctx.clock.now())
    if runs:
        log.info("goal prompt of participant %s closed after a crisis message", participant.id)
    return bool(runs)
