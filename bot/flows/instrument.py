"""A questionnaire such as PHQ-9 or GAD-7 as a flow: one step per item of
`content/<locale>/instruments/<id>.toml`, its answer options as buttons. What happens with the
answers (stored by item id, assessed, scored at the end) is in bot/services/instruments/service.py,
which registers the flow kind with the engine."""

from __future__ import annotations

import html
from typing import Any

from bot.content.instruments import Instrument, Item
from bot.db.instrument_models import INSTRUMENT
from bot.flows.engine import FlowStep, StepKind

__all__ = ["INSTRUMENT", "InstrumentSteps"]


class InstrumentSteps:
    """An instrument as engine steps, in file order. Button values are the options' scored values."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._steps = {item.id: self._step(item) for item in instrument.items}

    def _step(self, item: Item) -> FlowStep:
        hint = self.instrument.hint
        text = (f"<i>{html.escape(hint)}</i>\n\n" if hint else "") + f"<b>{html.escape(item.text)}</b>"
        choices = tuple((o.label, str(o.value)) for o in item.options)
        return FlowStep(item.id, StepKind.CHOICE, text, choices, 1, None, True,
                        min(o.value for o in item.options), max(o.value for o in item.options))

    def first_step(self) -> str:
        return self.instrument.items[0].id

    def step(self, step_id: str) -> FlowStep | None:
        return self._steps.get(step_id)

    def next_step(self, step_id: str, value: Any) -> str | None:
        return self.instrument.after(step_id) if step_id in self._steps else None

    def parse_text(self, step_id: str, text: str) -> tuple[bool, Any]:
        """A typed answer: the option's number ("2") or its label ("Several days")."""
        item = self.instrument.item(step_id)
        if item is None:
            return False, None
        folded = (text or "").strip().casefold().rstrip(".!")
        for option in item.options:
            if folded in (str(option.value), option.label.casefold()):
                return True, float(option.value)
        return False, None

    def progress(self, step_id: str) -> tuple[int, int] | None:
        ids = [i.id for i in self.instrument.items]
        return (ids.index(step_id) + 1, len(ids)) if step_id in ids else None
