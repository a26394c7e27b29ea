"""Skill exercises as flows: the steps of `content/<locale>/skills/*.md`, run by the flow engine.

How a content step becomes an engine step:

| content step | engine step | the participant gets |
|---|---|---|
| text | MESSAGE | the text and its button ("Next") |
| question | CHOICE | a button per choice; a choice's `next` branches |
| free_text | FREE_TEXT | a prompt; what they type is stored under the step's `key` |
| pause | MESSAGE | the text (and its optional skip button); after `seconds` a scheduled row sends the next step |
| reflection | (none) | the closing message: the run ends when the path reaches it |

Every step also has a Stop button: the run is kept (status `left`) and /skills continues it.
What happens with answers, pauses and the end is in bot/services/learning/exercises.py (`ExerciseFlow`). The exercise is
looked up in the content library each time, so a hot reload applies to runs in progress; a run
whose exercise (or current step) is gone is refused like a stale button.
"""

from __future__ import annotations

from typing import Any

from bot.content.callbacks import LEAVE_EXERCISE, NEXT_VALUE, item_callback
from bot.content.model import Exercise, Step
from bot.content.model import StepKind as ContentStepKind
from bot.content.render import TELEGRAM_TEXT_LIMIT, render_step
from bot.db.content_models import EXERCISE
from bot.flows.engine import FlowStep, StepKind

__all__ = ["EXERCISE", "ExerciseDefinition"]

# Room left in a step's message for a lead line ("Here is where you left off.", the title).
STEP_TEXT_LIMIT = TELEGRAM_TEXT_LIMIT - 300
FREE_TEXT_LIMIT = 2000  # characters kept of one typed answer


class ExerciseDefinition:
    """One exercise in one language as engine steps."""

    def __init__(self, exercise: Exercise, stop_label: str) -> None:
        self.exercise = exercise
        stop = ((stop_label, item_callback(LEAVE_EXERCISE, exercise.id)),)
        self._steps = {step.id: self._step(step, stop) for step in exercise.steps}

    def _step(self, step: Step, stop: tuple[tuple[str, str], ...]) -> FlowStep:
        text = render_step(self.exercise, step, limit=STEP_TEXT_LIMIT).text
        if step.kind is ContentStepKind.QUESTION:
            return FlowStep(step.id, StepKind.CHOICE, text, tuple((c.label, c.value) for c in step.choices),
                            columns=max(step.columns, 1), extra_buttons=stop)
        if step.kind is ContentStepKind.FREE_TEXT:
            return FlowStep(step.id, StepKind.FREE_TEXT, text, skip_label=step.button, extra_buttons=stop)
        if step.kind is ContentStepKind.TEXT:
            label = step.button or self.exercise.continue_label or "→"
            return FlowStep(step.id, StepKind.MESSAGE, text, ((label, NEXT_VALUE),), extra_buttons=stop)
        if step.kind is ContentStepKind.PAUSE:
            choices = ((step.button, NEXT_VALUE),) if step.button else ()
            return FlowStep(step.id, StepKind.MESSAGE, text, choices, extra_buttons=stop)
        return FlowStep(step.id, StepKind.MESSAGE, text)  # a reflection: sent as the closing message

    def content_step(self, step_id: str) -> Step | None:
        return self.exercise.step(step_id)

    def _following(self, step_id: str, value: Any) -> Step | None:
        step = self.exercise.step(step_id)
        if step is None:
            return None
        chosen = value if step.kind is ContentStepKind.QUESTION and isinstance(value, str) else None
        following = self.exercise.next_step_id(step, chosen)
        return self.exercise.step(following) if following else None

    # --- FlowDefinition ---------------------------------------------------------------------------

    def first_step(self) -> str:
        return self.exercise.first_step.id

    def step(self, step_id: str) -> FlowStep | None:
        return self._steps.get(step_id)

    def next_step(self, step_id: str, value: Any) -> str | None:
        """The next step to wait on; None when the path reaches a reflection or the end."""
        following = self._following(step_id, value)
        if following is None or following.kind is ContentStepKind.REFLECTION:
            return None
        return following.id

    def closing_step(self, step_id: str, value: Any) -> Step | None:
        """The reflection that closes the exercise after this answer, if the path reaches one."""
        following = self._following(step_id, value)
        return following if following is not None and following.kind is ContentStepKind.REFLECTION else None

    def parse_text(self, step_id: str, text: str) -> tuple[bool, Any]:
        step = self.exercise.step(step_id)
        text = (text or "").strip()
        if step is None or not text:
            return False, None
        if step.kind is ContentStepKind.FREE_TEXT:
            return True, text[:FREE_TEXT_LIMIT]
        if step.kind is ContentStepKind.QUESTION:
            folded = text.casefold().rstrip(".!")
            for choice in step.choices:  # typing "I'm ready" answers like the button does
                if folded in (choice.value.casefold(), choice.label.casefold()):
                    return True, choice.value
        return False, None

    def progress(self, step_id: str) -> tuple[int, int] | None:
        return None  # branches and loops make "3/7" misleading
