"""The flow engine: runs step-based flows (a check-in, a skill exercise, a questionnaire).

A flow is data: a `FlowDefinition` says which steps there are, what each asks and which comes
next. The engine keeps the participant's place in a `FlowRun` row (so a run survives restarts
and can be resumed), renders the current step, takes answers from buttons or typed text, and
tells the flow's `FlowKind` about each answer and the end. The engine knows nothing of
check-ins; a kind plugs in what to store and what to do at the end.

Buttons carry the run id and the step: `fl:<run>:<step>:<value>`, so a button from an old
message (an earlier step, a finished or expired run, someone else's run) is recognised as stale
and refused with a short notice instead of being taken as an answer.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.checkin_models import CheckinAnswer, FlowRun, FlowStatus
from bot.db.instrument_models import InstrumentAnswer
from bot.db.models import Participant
from bot.messaging import Keyboard, Replies, in_rows, keyboard

log = logging.getLogger(__name__)

CALLBACK_PREFIX = "fl"
SKIP_VALUE = "-"  # the Skip button of an optional step; never a choice value (those are slugs)


class StepKind(StrEnum):
    CHOICE = "choice"  # buttons; the chosen value is the answer (typing a label or value also works)
    NUMBER = "number"  # a typed number in range, or a quick button
    FREE_TEXT = "free_text"  # a typed line
    MESSAGE = "message"  # text and a button to go on (the value stored is "next")


@dataclass(frozen=True)
class FlowStep:
    """One step as the participant sees it. `text` is Telegram HTML, already in their language."""

    id: str
    kind: StepKind
    text: str
    choices: tuple[tuple[str, str], ...] = ()  # (label, value)
    columns: int = 1
    skip_label: str | None = None  # an optional step gets a Skip button
    numeric: bool = False  # choice values are numbers (a 0-10 scale): store them as numbers
    low: float | None = None
    high: float | None = None
    # Buttons beside the answer (an exercise's Stop): (label, callback data), one row each, handled
    # by their own router, never taken as an answer.
    extra_buttons: tuple[tuple[str, str], ...] = ()

    @property
    def takes_text(self) -> bool:
        return self.kind in (StepKind.FREE_TEXT, StepKind.NUMBER, StepKind.CHOICE)


class FlowDefinition(Protocol):
    """The steps of one flow in one language."""

    def first_step(self) -> str: ...

    def step(self, step_id: str) -> FlowStep | None: ...

    def next_step(self, step_id: str, value: Any) -> str | None:
        """The step after answering `step_id` with `value`; None when the flow ends."""
        ...

    def parse_text(self, step_id: str, text: str) -> tuple[bool, Any]:
        """A typed answer to `step_id`: (True, value) if it answers it, (False, None) if not."""
        ...

    def progress(self, step_id: str) -> tuple[int, int] | None:
        """(position, count) for a "2/6" marker, or None."""
        ...


@dataclass
class Turn:
    """What a kind's hooks get: the transaction, the app, who, which run, and where replies go."""

    session: AsyncSession
    ctx: AppContext
    participant: Participant
    run: FlowRun
    replies: Replies

    @property
    def answers(self) -> dict[str, Any]:
        return read_answers(self.run)


class FlowKind(Protocol):
    """What a family of flows (check-ins, exercises…) adds to the engine."""

    name: str

    def definition(self, run: FlowRun) -> FlowDefinition | None:
        """The steps for this run (its flow id and language); None if the flow no longer exists."""
        ...

    async def on_answer(self, turn: Turn, step: FlowStep, value: Any) -> None:
        """Called after each answer is recorded in the run (store it, assess it…)."""
        ...

    async def on_finish(self, turn: Turn) -> None:
        """Called once when the last step is answered (the closing message goes here)."""
        ...


def read_answers(run: FlowRun) -> dict[str, Any]:
    try:
        value = json.loads(run.answers or "{}")
    except json.JSONDecodeError:  # e.g. encrypted with a key we no longer have
        return {}
    return value if isinstance(value, dict) else {}


async def flow_opened_since(session: AsyncSession, participant_id: int, since: datetime) -> bool:
    """Whether a flow (a check-in, questionnaire, exercise, the weekly goal prompt) opened for the
    participant at or after `since`, whatever its state now, or a check-in or questionnaire that
    opened earlier was answered since (resumed with /checkin, answered with its buttons).

    A handler waiting for typed words (a goal, a reply to staff, a reason, a medication's name)
    asks this first: once a flow is in use after its question, typed text belongs to that flow (a
    "yes" to the safety question must page, not become a goal), or is an ordinary message."""
    for query in (
        select(FlowRun.id).where(FlowRun.participant_id == participant_id, FlowRun.started_at >= since),
        select(CheckinAnswer.id).where(CheckinAnswer.participant_id == participant_id,
                                       CheckinAnswer.answered_at >= since),
        select(InstrumentAnswer.id).where(InstrumentAnswer.participant_id == participant_id,
                                          InstrumentAnswer.answered_at >= since),
    ):
        if await session.scalar(query.limit(1)) is not None:
            return True
    return False


def flow_callback(run_id: int, step_id: str, value: str) -> str:
    return f"{CALLBACK_PREFIX}:{run_id}:{step_id}:{value}"


@dataclass(frozen=True)
class FlowButton:
    run_id: int
    step_id: str
    value: str


def parse_flow_callback(data: str | None) -> FlowButton | None:
    parts = (data or "").split(":", 3)
    if len(parts) != 4 or parts[0] != CALLBACK_PREFIX or not parts[1].isdigit():
        return None
    return FlowButton(int(parts[1]), parts[2], parts[3])


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class FlowEngine:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.kinds: dict[str, FlowKind] = {}

    def register(self, kind: FlowKind) -> None:
        self.kinds[kind.name] = kind

    # --- runs ---------------------------------------------------------------------------------

    async def start(self, session: AsyncSession, participant: Participant, kind: str, flow_id: str, *,
                    now: datetime, expires_at: datetime | None = None, local_date: date | None = None,
                    action_id: int | None = None) -> FlowRun:
        """A new run at the flow's first step (flushed, so it has an id for its buttons)."""
        flow_kind = self.kinds[kind]
        run = FlowRun(participant_id=participant.id, kind=kind, flow_id=flow_id, locale=participant.locale,
                      answers="{}", status=FlowStatus.ACTIVE, level=0, reasons="", started_at=now,
                      expires_at=expires_at, local_date=local_date, action_id=action_id)
        definition = flow_kind.definition(run)
        if definition is None:
            raise LookupError(f"no {kind} flow {flow_id!r}")
        run.step = definition.first_step()
        session.add(run)
        await session.flush()
        return run

    async def active_runs(self, session: AsyncSession, participant_id: int, kind: str | None = None
                          ) -> Sequence[FlowRun]:
        """Open runs, newest first (expired by time ones are left out)."""
        query = select(FlowRun).where(FlowRun.participant_id == participant_id,
                                      FlowRun.status == FlowStatus.ACTIVE)
        if kind is not None:
            query = query.where(FlowRun.kind == kind)
        now = self.ctx.clock.now()
        runs = (await session.scalars(query.order_by(FlowRun.id.desc()))).all()
        return [r for r in runs if r.expires_at is None or r.expires_at > now]

    def is_open(self, run: FlowRun) -> bool:
        return run.status == FlowStatus.ACTIVE and (run.expires_at is None or run.expires_at > self.ctx.clock.now())

    def current_step(self, run: FlowRun) -> FlowStep | None:
        definition = self.kinds[run.kind].definition(run) if run.kind in self.kinds else None
        return definition.step(run.step) if definition is not None and run.step else None

    # --- rendering ----------------------------------------------------------------------------

    def render(self, run: FlowRun, *, lead: str | None = None) -> tuple[str, Keyboard | None]:
        """The current step as a message: optional lead line, progress, the prompt, its buttons."""
        definition = self.kinds[run.kind].definition(run)
        step = definition.step(run.step) if definition is not None and run.step else None
        if definition is None or step is None:
            raise LookupError(f"run {run.id} has no current step")
        parts = [lead] if lead else []
        progress = definition.progress(step.id)
        text = step.text
        if progress is not None:
            text = f"<i>{progress[0]}/{progress[1]}</i>  {text}"
        parts.append(text)
        buttons = [(label, flow_callback(run.id, step.id, value)) for label, value in step.choices]
        rows = in_rows(buttons, max(1, step.columns)) if buttons else []
        if step.skip_label:
            rows.append([(step.skip_label, flow_callback(run.id, step.id, SKIP_VALUE))])
        rows.extend([button] for button in step.extra_buttons)
        return "\n\n".join(parts), keyboard(rows) if rows else None

    def show(self, run: FlowRun, replies: Replies, chat_id: int, *, lead: str | None = None) -> None:
        text, kb = self.render(run, lead=lead)
        replies.text(chat_id, text, kb)

    # --- answers --------------------------------------------------------------------------------

    async def press(self, session: AsyncSession, participant: Participant, data: str, replies: Replies,
                    message_id: int | None) -> bool:
        """A flow button. Returns False when it is stale (the caller says so); True when taken."""
        button = parse_flow_callback(data)
        if button is None:
            return False
        run = await session.get(FlowRun, button.run_id, with_for_update=True)
        if run is None or run.participant_id != participant.id or not self.is_open(run) or run.step != button.step_id:
            return False
        definition = self.kinds[run.kind].definition(run)
        step = definition.step(run.step) if definition is not None and run.step else None
        if definition is None or step is None:
            return False
        if button.value == SKIP_VALUE:
            if not step.skip_label:
                return False
            value: Any = None
            shown = step.skip_label
        elif step.kind is StepKind.MESSAGE:
            value, shown = "next", None
        else:
            labels = dict((v, label) for label, v in step.choices)
            if button.value not in labels:
                return False
            value = float(button.value) if step.numeric or step.kind is StepKind.NUMBER else button.value
            shown = labels[button.value]
        if message_id is not None and participant.chat_id is not None:
            # The answered question stays readable, without buttons to press twice.
            answer_line = f"\n\n→ <b>{html.escape(shown)}</b>" if shown else ""
            replies.edit(participant.chat_id, message_id, self._plain_prompt(run, step) + answer_line, None)
        await self._advance(session, participant, run, definition, step, value, replies)
        return True

    async def type_text(self, session: AsyncSession, participant: Participant, run: FlowRun, text: str,
                        replies: Replies) -> bool:
        """Typed text for `run`'s current step. False when it does not answer it (let others have it)."""
        definition = self.kinds[run.kind].definition(run)
        step = definition.step(run.step) if definition is not None and run.step else None
        if definition is None or step is None or not step.takes_text:
            return False
        if step.skip_label and text.strip().casefold() == step.skip_label.casefold():
            ok, value = True, None  # typing "Skip" does what the button does
        else:
            ok, value = definition.parse_text(step.id, text)
        if not ok:
            if step.kind is StepKind.NUMBER and participant.chat_id is not None:
                low, high = _format_number(step.low or 0), _format_number(step.high or 0)
                replies.text(participant.chat_id, self.ctx.t("flow.number_invalid", participant.locale,
                                                            low=low, high=high))
                return True
            return False
        await self._advance(session, participant, run, definition, step, value, replies)
        return True

    def _plain_prompt(self, run: FlowRun, step: FlowStep) -> str:
        return step.text

    async def _advance(self, session: AsyncSession, participant: Participant, run: FlowRun,
                       definition: FlowDefinition, step: FlowStep, value: Any, replies: Replies) -> None:
        answers = read_answers(run)
        answers[step.id] = value
        run.answers = json.dumps(answers)
        kind = self.kinds[run.kind]
        turn = Turn(session, self.ctx, participant, run, replies)
        await kind.on_answer(turn, step, value)
        following = definition.next_step(step.id, value)
        run.step = following
        if following is None:
            run.status = FlowStatus.FINISHED
            run.finished_at = self.ctx.clock.now()
            await kind.on_finish(turn)
            return
        if participant.chat_id is not None:
            self.show(run, replies, participant.chat_id)

    # --- closing -----------------------------------------------------------------------------------

    async def close(self, session: AsyncSession, run_ids: Sequence[int], status: FlowStatus, now: datetime) -> None:
        if run_ids:
            await session.execute(
                update(FlowRun).where(FlowRun.id.in_(run_ids), FlowRun.status == FlowStatus.ACTIVE)
                .values(status=status, finished_at=now, step=None)
                .execution_options(synchronize_session=False)
            )
