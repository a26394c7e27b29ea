"""Structured triggers: check-in and questionnaire answers that are a safety signal by themselves.

The check-in and questionnaire features call `assess_answers` and get the same Assessment as the
text rules, so everything downstream (crisis reply, alert, caseload) treats both alike:

- a "yes" to the check-in safety question (id "safety") → urgent, suicide;
- PHQ-9 item 9 (id "phq9_9") above 0 → urgent, suicide, whatever the total (CLINICAL.md);
- mood (id "mood", 0–10) at or below `low_mood` → concern;
- craving (id "craving", 0–10) at or above `high_craving` → concern, overdose_relapse;
- the last `low_mood_run_days` moods all at or below `low_mood_run_max` → concern.

When an answer to the safety question or to PHQ-9 item 9 cannot be read, the higher level is
chosen: an unreadable answer to "are you safe?" is treated as a "yes".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.config import TriggerThresholds  # settings ([triggers] in config.toml); used here
from bot.safety.levels import NO_RISK, Assessment, Category, Level

SAFETY_QUESTION = "safety"
PHQ9_ITEM9 = "phq9_9"
MOOD = "mood"
CRAVING = "craving"

_YES = frozenset({"yes", "y", "yeah", "yep", "true", "1", "si", "sí", "s"})
_NO = frozenset({"no", "n", "nope", "false", "0", "none", "nunca"})


def _number(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _said_yes(value: object) -> bool | None:
    """True for yes, False for no, None when there is no answer."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    number = _number(value)
    if number is not None:
        return number > 0
    if isinstance(value, str):
        word = value.strip().casefold()
        if not word:
            return None
        return word not in _NO  # "yes", but also "maybe", "not sure": when unsure, the higher level
    return True


DEFAULT_THRESHOLDS = TriggerThresholds()


def assess_answers(
    answers: Mapping[str, object],
    thresholds: TriggerThresholds = DEFAULT_THRESHOLDS,
    recent_moods: Sequence[int] = (),
) -> Assessment:
    """Assess one set of check-in or questionnaire answers, by question id.

    `recent_moods` are the participant's moods on previous check-in days, oldest first; today's
    mood from `answers`, if any, is added before looking for a run of low moods.
    """
    result = NO_RISK
    if _said_yes(answers.get(SAFETY_QUESTION)):
        result = result.combine(Assessment(Level.URGENT, (Category.SUICIDE,), ("trigger:safety_question",)))
    if PHQ9_ITEM9 in answers and answers[PHQ9_ITEM9] is not None:
        item9 = _number(answers[PHQ9_ITEM9])
        if item9 is None or item9 > 0:  # unreadable: the higher level
            result = result.combine(Assessment(Level.URGENT, (Category.SUICIDE,), ("trigger:phq9_item9",)))
    mood = _number(answers.get(MOOD))
    if mood is not None and mood <= thresholds.low_mood:
        result = result.combine(Assessment(Level.CONCERN, (), ("trigger:low_mood",)))
    craving = _number(answers.get(CRAVING))
    if craving is not None and craving >= thresholds.high_craving:
        result = result.combine(Assessment(Level.CONCERN, (Category.OVERDOSE_RELAPSE,), ("trigger:high_craving",)))
    moods = [m for m in (_number(v) for v in recent_moods) if m is not None]
    if mood is not None:
        moods.append(mood)
    days = thresholds.low_mood_run_days
    if days > 0 and len(moods) >= days and all(m <= thresholds.low_mood_run_max for m in moods[-days:]):
        result = result.combine(Assessment(Level.CONCERN, (), ("trigger:low_mood_run",)))
    return result
