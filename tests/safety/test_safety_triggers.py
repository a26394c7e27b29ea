"""Structured triggers: check-in and questionnaire answers."""

from __future__ import annotations

import pytest

from bot.safety.levels import Category, Level
from bot.safety.triggers import TriggerThresholds, assess_answers

DEFAULT = TriggerThresholds()


@pytest.mark.parametrize("answer", ["yes", "Yes", "y", True, 1, "sí", "maybe", "not sure"])
def test_safety_question_yes_is_urgent(answer: object) -> None:
    result = assess_answers({"safety": answer}, DEFAULT)
    assert result.level == Level.URGENT
    assert result.categories == (Category.SUICIDE,)
    assert result.reasons == ("trigger:safety_question",)


@pytest.mark.parametrize("answer", ["no", "No", False, 0, None, ""])
def test_safety_question_no(answer: object) -> None:
    assert assess_answers({"safety": answer}, DEFAULT).level == Level.NONE


@pytest.mark.parametrize(
    ("value", "level"), [(0, Level.NONE), (1, Level.URGENT), (3, Level.URGENT), ("2", Level.URGENT)]
)
def test_phq9_item9(value: object, level: Level) -> None:
    answers = {f"phq9_{i}": 0 for i in range(1, 9)} | {"phq9_9": value}
    assert assess_answers(answers, DEFAULT).level == level


def test_phq9_item9_unreadable_is_urgent() -> None:
    assert assess_answers({"phq9_9": "several days"}, DEFAULT).level == Level.URGENT


def test_phq9_item9_counts_whatever_the_total() -> None:
    answers = {f"phq9_{i}": 0 for i in range(1, 9)} | {"phq9_9": 1}  # total 1: "minimal"
    assert assess_answers(answers, DEFAULT).reasons == ("trigger:phq9_item9",)


@pytest.mark.parametrize(("mood", "level"), [(0, Level.CONCERN), (2, Level.CONCERN), (3, Level.NONE), (10, Level.NONE)])
def test_low_mood(mood: int, level: Level) -> None:
    assert assess_answers({"mood": mood}, DEFAULT).level == level


@pytest.mark.parametrize(("craving", "level"), [(7, Level.NONE), (8, Level.CONCERN), (10, Level.CONCERN)])
def test_high_craving(craving: int, level: Level) -> None:
    result = assess_answers({"craving": craving}, DEFAULT)
    assert result.level == level
    if level:
        assert result.categories == (Category.OVERDOSE_RELAPSE,)
        assert result.reasons == ("trigger:high_craving",)


def test_run_of_low_moods() -> None:
    assert assess_answers({"mood": 3}, DEFAULT, recent_moods=[3, 2]).reasons == ("trigger:low_mood_run",)
    assert assess_answers({"mood": 3}, DEFAULT, recent_moods=[5, 2]).level == Level.NONE
    assert assess_answers({}, DEFAULT, recent_moods=[1, 3, 3]).level == Level.CONCERN
    assert assess_answers({"mood": 6}, DEFAULT, recent_moods=[1, 1, 1]).level == Level.NONE  # run broken today


def test_thresholds_are_configurable() -> None:
    strict = TriggerThresholds(low_mood=4, high_craving=6, low_mood_run_days=2, low_mood_run_max=5)
    assert assess_answers({"mood": 4}, strict).level == Level.CONCERN
    assert assess_answers({"craving": 6}, strict).level == Level.CONCERN
    assert "trigger:low_mood_run" in assess_answers({"mood": 5}, strict, recent_moods=[5]).reasons


def test_thresholds_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT.low_mood = 5  # type: ignore[misc]


def test_several_triggers_combine_to_the_highest() -> None:
    result = assess_answers({"safety": "yes", "mood": 1, "craving": 9}, DEFAULT)
    assert result.level == Level.URGENT
    assert set(result.reasons) == {"trigger:safety_question", "trigger:low_mood", "trigger:high_craving"}
    assert Category.SUICIDE in result.categories and Category.OVERDOSE_RELAPSE in result.categories


def test_nothing_answered() -> None:
    assert assess_answers({}, DEFAULT).level == Level.NONE
    assert assess_answers({"mood": "n/a", "craving": None}, DEFAULT).level == Level.NONE
