"""What an alert says was found: the rules' constructs in the clinician's language, or the trigger."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.content.i18n import Texts
from bot.services.labels import constructs_text
from tests.support import loaded

CONTENT = Path(__file__).resolve().parents[2] / "content"


@dataclass
class _Ctx:  # the two things constructs_text asks of the application context
    texts: Texts

    def t(self, key: str, locale: str, **values: Any) -> str:
        return self.texts.get(key, locale, **values)


CTX = _Ctx(Texts.load(CONTENT))
RULES = loaded.safety_rules(CONTENT)


def test_an_act_in_plain_words_is_named_for_the_clinician_in_their_language() -> None:
    reasons = RULES.assess("emptied my pill bottle an hour ago").reasons
    assert constructs_text(CTX, reasons, "en") == "act in progress or just done: ingestion"
    assert constructs_text(CTX, reasons, "es") == "acto en curso o recién hecho: ingesta"


def test_means_next_to_ideation_names_both() -> None:
    reasons = RULES.assess("I want to die tonight, I have been saving my pills").reasons
    text = constructs_text(CTX, reasons, "en")
    assert "wish to be dead" in text and "means: medication" in text


def test_a_trigger_alert_names_the_trigger_not_a_dash() -> None:
    assert constructs_text(CTX, ("trigger:safety_question",), "en") == "said yes to the safety question"
    assert constructs_text(CTX, ("trigger:phq9_item9",), "es") == "PHQ-9 ítem 9"
    assert constructs_text(CTX, (), "en") == "–"


def test_every_construct_and_detail_of_the_rules_has_words_in_both_languages() -> None:
    for rule in RULES.rules:
        for locale in ("en", "es"):
            assert CTX.texts.has(f"construct.{rule.construct.value}"), rule.construct
            if rule.detail:
                assert CTX.texts.has("construct.detail_" + rule.detail.replace(" ", "_")), rule.detail
            assert constructs_text(CTX, (rule.construct_reason,), locale) != "–"
