"""The daily check-in as a flow: the questions of `content/<locale>/checkins/daily.toml`, run by
the flow engine. What happens with the answers (stored per question, assessed, the scheduled row
marked answered) is in bot/services/checkins/service.py, which registers `CheckinFlow` with the engine."""

from __future__ import annotations

from typing import Any

from bot.content.checkins import Question, QuestionKind, Questionnaire
from bot.context import AppContext
from bot.db.checkin_models import CHECKIN
from bot.flows.engine import FlowStep, StepKind

__all__ = ["CHECKIN", "QuestionnaireFlow"]


class QuestionnaireFlow:
    """A questionnaire as engine steps: one step per question, in file order."""

    def __init__(self, questionnaire: Questionnaire, ctx: AppContext) -> None:
        self.questionnaire = questionnaire
        self.ctx = ctx
        self._steps = {q.id: self._step(q) for q in questionnaire.questions}

    def _step(self, q: Question) -> FlowStep:
        locale = self.questionnaire.locale
        text = q.text + (f"\n<i>{q.hint}</i>" if q.hint else "")
        skip = self.ctx.t("flow.skip", locale) if q.optional else None
        if q.kind is QuestionKind.NUMBER:
            choices = tuple((b, b) for b in q.buttons)
            return FlowStep(q.id, StepKind.NUMBER, text, choices, q.columns or 4, skip, True, q.low, q.high)
        if q.kind is QuestionKind.FREE_TEXT:
            return FlowStep(q.id, StepKind.FREE_TEXT, text, (), 1, skip)
        choices = tuple((c.label, c.value) for c in q.choices)
        default_columns = 6 if q.kind is QuestionKind.SCALE else 1
        return FlowStep(q.id, StepKind.CHOICE, text, choices, q.columns or default_columns, skip,
                        q.kind is QuestionKind.SCALE, q.low, q.high)

    def first_step(self) -> str:
        return self.questionnaire.questions[0].id

    def step(self, step_id: str) -> FlowStep | None:
        return self._steps.get(step_id)

    def next_step(self, step_id: str, value: Any) -> str | None:
        return self.questionnaire.after(step_id) if step_id in self._steps else None

    def parse_text(self, step_id: str, text: str) -> tuple[bool, Any]:
        q = self.questionnaire.question(step_id)
        if q is None:
            return False, None
        text = (text or "").strip()
        if q.kind is QuestionKind.FREE_TEXT:
            return (True, text[:2000]) if text else (False, None)
        if q.numeric:
            value = q.parse_number(text)
            return (value is not None), value
        folded = text.casefold().rstrip(".!")
        for choice in q.choices:  # typing "yes" or "Sí" answers like the button does
            if folded in (choice.value.casefold(), choice.label.casefold()):
                return True, choice.value
        return False, None

    def progress(self, step_id: str) -> tuple[int, int] | None:
        ids = [q.id for q in self.questionnaire.questions]
        return (ids.index(step_id) + 1, len(ids)) if step_id in ids else None
