"""Skill exercises: starting, leaving and continuing them, their answers, pauses and the end.

- One exercise is open at a time: starting another one closes the earlier (abandoned). Stop (a
  button under every step) or another content command (/learn, /skills…) sets the run aside
  (status `left`): it takes no typed text, and /skills offers "Continue" until it is finished or
  another exercise is started. A run still open survives restarts (it is a FlowRun row).
- Answers of steps with a `key` (free text, and questions that name one) are stored as
  ExerciseAnswer rows; /plan and /safetyplan show the newest answer per key.
- A pause step is shown at once; the step after it is sent by an `exercise_step` row due after
  `seconds` (key `exercise_step:<run>:<step>:<due>`). Pressing its skip button, Stop, or any
  other answer makes the pending row obsolete: it is cancelled, or skipped when it comes due.
- Answers that are structured safety triggers (the safety plan's "No, I'm not safe") raise a
  flag like the check-in's safety question does: crisis reply, escalation, page. Typed answers
  need no second look here: the safety gate assessed them before any handler ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.callbacks import NEXT_VALUE
from bot.content.model import Exercise, Step
from bot.content.model import StepKind as ContentStepKind
from bot.content.render import render_step
from bot.content.store import ContentStore
from bot.context import AppContext
from bot.db.checkin_models import FlowRun, FlowStatus
from bot.db.content_models import EXERCISE, EXERCISE_STEP, DeliveredVia, ExerciseAnswer
from bot.db.models import ENROLLED, ActionStatus, Participant, ScheduledAction
from bot.flows.engine import FlowEngine, FlowStep, Turn, flow_callback
from bot.flows.exercise import ExerciseDefinition
from bot.messaging import Messenger, Replies
from bot.safety.levels import Assessment, Category, Level
from bot.services.learning.receipts import feedback_prompt, record_delivery
from bot.services.scheduling.outbox import Delivered, Skip, enqueue

log = logging.getLogger(__name__)

RELAPSE_PREVENTION_PLAN = "relapse_prevention_plan"
SAFETY_PLAN = "safety_plan"

# (exercise id, answer key, chosen value) -> the flag it raises. Ids and values are the same in
# every language, so one entry covers every translation.
EXERCISE_TRIGGERS: dict[tuple[str, str, str], Assessment] = {
    (SAFETY_PLAN, "safe_now", "not_safe"): Assessment(
        Level.URGENT, (Category.SUICIDE,), ("trigger:safety_plan_not_safe",)),
}

OPEN_STATUSES = (FlowStatus.ACTIVE, FlowStatus.LEFT)


def _engine(ctx: AppContext) -> FlowEngine:
    return ctx.parts.get(FlowEngine)


def exercise_flow(ctx: AppContext) -> ExerciseFlow:
    flow = _engine(ctx).kinds[EXERCISE]
    assert isinstance(flow, ExerciseFlow)
    return flow


def _step_key_prefix(run_id: int) -> str:
    return f"{EXERCISE_STEP}:{run_id}:"


# --- open runs ------------------------------------------------------------------------------------

async def open_exercise_runs(session: AsyncSession, participant_id: int) -> Sequence[FlowRun]:
    """Exercise runs not finished yet (in progress or set aside), newest first."""
    return (await session.scalars(
        select(FlowRun).where(FlowRun.participant_id == participant_id, FlowRun.kind == EXERCISE,
                              FlowRun.status.in_(OPEN_STATUSES))
        .order_by(FlowRun.id.desc()))).all()


async def _cancel_pauses(session: AsyncSession, participant_id: int, run_ids: Sequence[int], why: str) -> None:
    for run_id in run_ids:
        await session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.participant_id == participant_id,  # indexed: a few rows, never a scan
                   ScheduledAction.kind == EXERCISE_STEP, ScheduledAction.status == ActionStatus.PENDING,
                   ScheduledAction.key.startswith(_step_key_prefix(run_id), autoescape=True))
            .values(status=ActionStatus.CANCELLED, last_error=why)
            .execution_options(synchronize_session=False))


async def set_aside(session: AsyncSession, ctx: AppContext, participant: Participant,
                    exercise_id: str | None = None) -> list[FlowRun]:
    """Stop: the participant's exercise in progress (of `exercise_id`, if given) waits for /skills."""
    runs = [r for r in await open_exercise_runs(session, participant.id)
            if r.status == FlowStatus.ACTIVE and (exercise_id is None or r.flow_id == exercise_id)]
    for run in runs:
        run.status = FlowStatus.LEFT
    await _cancel_pauses(session, participant.id, [r.id for r in runs], "exercise set aside")
    return runs


# --- starting and continuing ---------------------------------------------------------------------------

def _lead(ctx: AppContext, exercise: Exercise, locale: str, resumed: bool) -> str:
    title = ctx.t("exercise.title", locale, title=exercise.title)
    return f"{title}\n{ctx.t('exercise.resume', locale)}" if resumed else title


async def start_exercise(session: AsyncSession, ctx: AppContext, participant: Participant, exercise_id: str,
                         replies: Replies) -> FlowRun | None:
    """Start `exercise_id` from its first step; an earlier open exercise is closed (abandoned)."""
    chat_id = participant.chat_id or 0
    flow = exercise_flow(ctx)
    exercise = flow.exercise(exercise_id, participant.locale)
    if exercise is None:
        replies.text(chat_id, ctx.t("skills.not_available", participant.locale))
        return None
    now = ctx.clock.now()
    earlier = await open_exercise_runs(session, participant.id)
    for old in earlier:
        old.status, old.finished_at, old.step = FlowStatus.ABANDONED, now, None
    await _cancel_pauses(session, participant.id, [r.id for r in earlier], "another exercise started")
    run = await _engine(ctx).start(session, participant, EXERCISE, exercise.id, now=now)
    await step_shown(session, ctx, run)
    _engine(ctx).show(run, replies, chat_id, lead=_lead(ctx, exercise, participant.locale, resumed=False))
    log.info("participant %s started exercise run %s", participant.id, run.id)
    return run


async def continue_exercise(session: AsyncSession, ctx: AppContext, participant: Participant, run_id: int,
                            replies: Replies) -> bool:
    """Continue an open exercise where it was left (shown again, pause timer restarted)."""
    chat_id = participant.chat_id or 0
    run = await session.get(FlowRun, run_id, with_for_update=True)
    if run is None or run.participant_id != participant.id or run.kind != EXERCISE \
            or run.status not in OPEN_STATUSES:
        return False
    flow = exercise_flow(ctx)
    definition = flow.definition(run)
    if definition is None or run.step is None or definition.step(run.step) is None:
        # The exercise (or this step) is no longer in the library: close the run, say so.
        run.status, run.finished_at, run.step = FlowStatus.ABANDONED, ctx.clock.now(), None
        replies.text(chat_id, ctx.t("skills.not_available", participant.locale))
        return True
    run.status = FlowStatus.ACTIVE
    await step_shown(session, ctx, run)
    _engine(ctx).show(run, replies, chat_id, lead=_lead(ctx, definition.exercise, participant.locale, resumed=True))
    return True


async def step_shown(session: AsyncSession, ctx: AppContext, run: FlowRun) -> None:
    """The run's current step is being shown: a pause schedules the step after it."""
    definition = exercise_flow(ctx).definition(run)
    step = definition.content_step(run.step) if definition is not None and run.step else None
    await _cancel_pauses(session, run.participant_id, [run.id], "superseded")
    if step is not None and step.kind is ContentStepKind.PAUSE:
        await _schedule_pause(session, ctx, run, step)


async def _schedule_pause(session: AsyncSession, ctx: AppContext, run: FlowRun, step: Step) -> None:
    now = ctx.clock.now()
    seconds = step.seconds or 1
    due = now + timedelta(seconds=seconds)
    await enqueue(session, kind=EXERCISE_STEP, key=f"{_step_key_prefix(run.id)}{step.id}:{due.timestamp():.3f}",
                  due_at=due, participant_id=run.participant_id, payload={"run": run.id, "step": step.id}, now=now)
    # A hint only (the row is what counts): wake the scheduler when the pause is over rather than
    # at its next tick, so a 4-second breath does not last 9.
    with contextlib.suppress(RuntimeError):  # no running loop (a script): the tick will do
        asyncio.get_running_loop().call_later(seconds + 0.05, ctx.wake_outbox)


# --- answers --------------------------------------------------------------------------------------

async def record_answer(turn: Turn, definition: ExerciseDefinition, step_id: str, value: Any) -> None:
    """Store a keyed answer, raise a structured trigger, schedule what a pause needs."""
    run, participant, session, ctx = turn.run, turn.participant, turn.session, turn.ctx
    exercise = definition.exercise
    step = definition.content_step(step_id)
    if step is None:
        return
    now = ctx.clock.now()
    if step.key and value is not None and step.kind in (ContentStepKind.FREE_TEXT, ContentStepKind.QUESTION):
        answer = await session.scalar(select(ExerciseAnswer).where(ExerciseAnswer.run_id == run.id,
                                                                   ExerciseAnswer.key == step.key))
        if answer is None:
            answer = ExerciseAnswer(participant_id=participant.id, run_id=run.id, exercise_id=exercise.id,
                                    key=step.key, answered_at=now)
            session.add(answer)
        is_text = step.kind is ContentStepKind.FREE_TEXT
        answer.value_text = str(value) if is_text else None
        answer.value_choice = None if is_text else str(value)[:40]
        answer.answered_at = now
    trigger = EXERCISE_TRIGGERS.get((exercise.id, step.key or "", str(value)))
    if trigger is not None:
        run.reasons = ",".join(dict.fromkeys([r for r in run.reasons.split(",") if r] + list(trigger.reasons)))[:300]
        if trigger.level > run.level:
            run.level = int(trigger.level)
            from bot.services.escalation.record import flag_from_answers

            await flag_from_answers(session, ctx, participant, trigger, source="exercise", replies=turn.replies)
    following = definition.next_step(step_id, value)
    await _cancel_pauses(session, run.participant_id, [run.id], "answered")
    if following is not None:
        next_step = definition.content_step(following)
        if next_step is not None and next_step.kind is ContentStepKind.PAUSE:
            await _schedule_pause(session, ctx, run, next_step)


async def finish_exercise(turn: Turn, exercise: Exercise, closing: Step | None) -> None:
    """The path reached its reflection (or the last step): the closing words, then "Was this helpful?"."""
    participant, ctx = turn.participant, turn.ctx
    if participant.chat_id is None:
        return
    locale = participant.locale
    if closing is not None:
        turn.replies.text(participant.chat_id, render_step(exercise, closing).text)
    else:
        turn.replies.text(participant.chat_id, ctx.t("exercise.done", locale))
    receipt = await record_delivery(turn.session, ctx, participant.id, exercise.id, DeliveredVia.EXERCISE)
    if turn.run.level < Level.URGENT:  # after a crisis reply, no survey
        text, keyboard = feedback_prompt(ctx, locale, exercise.id, receipt)
        turn.replies.text(participant.chat_id, text, keyboard)


# --- the scheduled row after a pause ---------------------------------------------------------------------

async def send_exercise_step(ctx: AppContext, messenger: Messenger, session: AsyncSession, row: ScheduledAction
                             ) -> Delivered | None:
    """ActionSender for `exercise_step` rows: the pause is over, send the step after it."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or participant.chat_id is None or participant.status not in ENROLLED \
            or participant.unreachable_at is not None:
        raise Skip("participant stopped or unreachable")
    run = await session.get(FlowRun, int(row.payload.get("run", 0)), with_for_update=True)
    step_id = str(row.payload.get("step", ""))
    if run is None or run.status != FlowStatus.ACTIVE or run.step != step_id:
        raise Skip("the exercise moved on, was set aside or ended")
    replies = Replies()
    if not await _engine(ctx).press(session, participant, flow_callback(run.id, step_id, NEXT_VALUE), replies, None):
        raise Skip("the step is no longer in the exercise")
    sent = await replies.deliver(messenger)
    return Delivered(sent.chat_id, sent.message_id) if sent else None


class ExerciseFlow:
    """The FlowKind of skill exercises: the engine calls these hooks."""

    name = EXERCISE

    def __init__(self, ctx: AppContext, store: ContentStore) -> None:
        self.ctx = ctx
        self.store = store
        self._definitions: dict[tuple[str, str], ExerciseDefinition] = {}
        # Between an answer and the end of the run in the same turn: which reflection closes it.
        self._closing: dict[int, Step | None] = {}

    def exercise(self, exercise_id: str, locale: str) -> Exercise | None:
        return self.store.library.exercise(exercise_id, locale)

    def definition(self, run: FlowRun) -> ExerciseDefinition | None:
        exercise = self.exercise(run.flow_id, run.locale)
        if exercise is None:
            return None
        key = (run.flow_id, run.locale)
        cached = self._definitions.get(key)
        if cached is None or cached.exercise is not exercise:  # new, or the library was reloaded
            cached = self._definitions[key] = ExerciseDefinition(exercise, self.ctx.t("exercise.stop", run.locale))
        return cached

    async def on_answer(self, turn: Turn, step: FlowStep, value: Any) -> None:
        definition = self.definition(turn.run)
        if definition is None:
            return
        if definition.next_step(step.id, value) is None:
            self._closing[turn.run.id] = definition.closing_step(step.id, value)
        await record_answer(turn, definition, step.id, value)

    async def on_finish(self, turn: Turn) -> None:
        definition = self.definition(turn.run)
        closing = self._closing.pop(turn.run.id, None)
        if definition is not None:
            await finish_exercise(turn, definition.exercise, closing)
