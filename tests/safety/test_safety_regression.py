"""The regression phrases (regression_en.toml, regression_es.toml) against the real rules."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.safety.levels import Level
from bot.safety.rules import SafetyRules

HERE = Path(__file__).parent


def _cases() -> list[object]:
    params = []
    for locale in ("en", "es"):
        data = tomllib.loads((HERE / f"regression_{locale}.toml").read_text(encoding="utf-8"))
        for number, case in enumerate(data["case"], 1):
            label = f"{locale}-{number}-{case['text'][:40]}"
            params.append(pytest.param(locale, case, id=label))
    return params


@pytest.mark.parametrize(("locale", "case"), _cases())
def test_regression_phrase(rules: SafetyRules, locale: str, case: dict[str, str]) -> None:
    assessment = rules.assess(case["text"], locale)
    assert assessment.level == Level.parse(case["level"]), (
        f"{case['text']!r}: expected {case['level']}, got {assessment.level.label} {assessment.reasons}"
    )
    if "category" in case:
        assert case["category"] in [c.value for c in assessment.categories], assessment


def test_reasons_name_rules_never_words(rules: SafetyRules) -> None:
    text = "I have the pills here and I want to die tonight"
    assessment = rules.assess(text)
    assert assessment.level == Level.IMMINENT
    assert assessment.reasons
    for reason in assessment.reasons:
        assert reason.startswith(("rule:", "guard:", "construct:")), reason
        assert " " not in reason  # an id, not words
    assert "want to die" not in " ".join(assessment.reasons)


def test_reason_format_is_category_and_id(rules: SafetyRules) -> None:
    assert rules.assess("I want to die").reasons == ("rule:suicide/want_to_die", "construct:passive_ideation")


def test_the_alert_label_names_the_constructs(rules: SafetyRules) -> None:
    # What a clinician reads at 2 a.m.: the level's why, in clinical terms, never the words.
    assessment = rules.assess("I want to die tonight, I have been saving my pills")
    assert assessment.level == Level.IMMINENT
    assert "passive ideation" in assessment.constructs and "means: medication" in assessment.constructs


def test_unknown_locale_falls_back_to_english(rules: SafetyRules) -> None:
    assert rules.assess("I want to die", "xx").level == Level.URGENT
    assert rules.assess("I want to die", "").level == Level.URGENT
    assert rules.assess("I want to die", "en_US").level == Level.URGENT


def test_spanish_messages_also_run_english_rules(rules: SafetyRules) -> None:
    assert rules.assess("hoy i want to kill myself", "es").level >= Level.URGENT
    assert rules.assess("quiero morir", "es-MX").level == Level.URGENT


def test_every_language_assesses_every_message(rules: SafetyRules) -> None:
    # The participant's language setting only picks the reply: Spanish from someone set to English
    # is caught, and so is a message that mixes the two.
    assert rules.assess("quiero morir", "en").level == Level.URGENT
    assert rules.assess("ya no aguanto mas, quiero morirme", "en").level >= Level.URGENT
    assert rules.assess("honestly ya no quiero vivir, I'm done", "en").level >= Level.URGENT


def test_explain_shows_cancelled_matches(rules: SafetyRules) -> None:
    findings = rules.explain("I would never hurt myself")
    assert findings and all(f.level == Level.NONE for f in findings)
    assert any(f.guard == "negation" for f in findings)


def test_when_unsure_the_higher_level_wins(rules: SafetyRules) -> None:
    # A negated phrase and a plain one in the same message: the plain one decides.
    assessment = rules.assess("I don't want to die but sometimes I want to kill myself")
    assert assessment.level == Level.URGENT


def test_time_words_count_only_near_the_risk(rules: SafetyRules) -> None:
    near = "I want to kill myself tomorrow"
    far = (
        "I want to kill myself. "
        + "I had a long talk with my sponsor about work and family and food. " * 2
        + "Tomorrow I have an exam."
    )
    assert rules.assess(near).level == Level.IMMINENT
    assert rules.assess(far).level == Level.URGENT


def test_plan_and_means_markers_raise_any_risk(rules: SafetyRules) -> None:
    assert rules.assess("I feel hopeless").level == Level.CONCERN
    assert rules.assess("I feel hopeless. I've been saving up my pills").level == Level.IMMINENT


def test_a_past_marker_does_not_raise(rules: SafetyRules) -> None:
    assert rules.assess("Years ago I stockpiled my pills. I feel hopeless today").level == Level.CONCERN
