"""Scoring a questionnaire: by item id and option value, never by the words.

Pure functions over an `Instrument` (content) and the answers {item id: value}: the same answers
score the same in every language. A safety item (PHQ-9 item 9) above 0 is urgent whatever the
total, and an answer to it that cannot be read counts as above 0 (when unsure, the higher level).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.content.instruments import Band, Instrument
from bot.safety.levels import NO_RISK, Assessment, Category, Level
from bot.safety.triggers import PHQ9_ITEM9, assess_answers


@dataclass(frozen=True)
class Score:
    total: int
    band: Band
    highest: int  # the highest possible total (27 for PHQ-9): "12 of 27"


def _value(answer: object) -> int | None:
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return answer
    if isinstance(answer, float) and answer.is_integer():
        return int(answer)
    if isinstance(answer, str) and answer.strip().isdigit():
        return int(answer.strip())
    return None


def score(instrument: Instrument, answers: Mapping[str, object]) -> Score | None:
    """The total of the scored items' values and its band; None until every scored item has a
    value that is one of its options (a half-answered questionnaire has no score)."""
    total = 0
    for item in instrument.scored_items:
        value = _value(answers.get(item.id))
        if value is None or value not in {o.value for o in item.options}:
            return None
        total += value
    band = instrument.band(total)
    if band is None:  # the content check makes the bands cover every total; never guess one
        raise ValueError(f"{instrument.path}: no band for total {total}")
    return Score(total, band, instrument.highest_total)


def safety_reason(item_id: str) -> str:
    """The trigger id of a safety item, as the caseload and alerts name it ("trigger:phq9_item9")."""
    return "trigger:phq9_item9" if item_id == PHQ9_ITEM9 else f"trigger:{item_id}"


def assess(instrument: Instrument, answers: Mapping[str, object]) -> Assessment:
    """The safety signal of the answers so far: each safety item answered above 0 (or unreadably)
    is urgent, whatever the total. PHQ-9 item 9 also goes through the structured triggers
    (bot/safety/triggers.py, the one home of that rule), even in a file that forgot to list it."""
    result = assess_answers({k: v for k, v in answers.items() if k == PHQ9_ITEM9}) if answers else NO_RISK
    for item_id in instrument.safety_items:
        if item_id not in answers or answers[item_id] is None:
            continue
        value = _value(answers[item_id])
        if value is None or value > 0:
            result = result.combine(Assessment(Level.URGENT, (Category.SUICIDE,), (safety_reason(item_id),)))
    return result
