"""Normalization before matching, and input that must never break the detector."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.safety.levels import Level
from bot.safety.normalize import Normalizer, normalize
from bot.safety.rules import SafetyRules
from tests.support import loaded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I DON'T want to DIE", "i do not want to die"),
        ("I don’t wanna be here", "i do not want to be here"),
        ("don t", "do not"),
        ("i m done", "i am done"),
        ("I can't", "i can not"),
        ("diiiiie", "die"),
        ("sooooo tired", "tired"),
        ("killllll", "kill"),
        ("pleeeease", "please"),
        ("k i l l  m y s e l f", "killmyself"),
        ("k.i.l.l myself", "kill myself"),
        ("su1c1de", "suicide"),
        ("d13", "die"),
        ("$uicide", "suicide"),
        ("suicde", "suicide"),
        ("sucide", "suicide"),
        ("kil myself", "kill myself"),
        ("gonna", "going to"),
        ("kms", "kill myself"),
        ("#wanttodie", "wanttodie"),
        ("suicidárme", "suicidarme"),
        ("nunca me haría daño", "nunca me haria dano"),
        ("ｋｉｌｌ ｍｙｓｅｌｆ", "kill myself"),
        ("k\u0456ll myself", "kill myself"),  # Cyrillic і
        ("ki\u200bll", "kill"),  # zero-width space
        ("i have the 💊", "i have the pills"),
        ("I just really want to fucking die", "i want to die"),
        ("No. I want to die.", "no . i want to die"),
        ("3pm, 200mg, 2nd", "3pm 200mg 2nd"),
        ("see https://example.com/x @someone", "see"),
        ("i cut my self", "i cut myself"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_vocabulary_keeps_real_double_letters() -> None:
    assert Normalizer(["bottle"]).normalize("bottttle") == "bottle"
    assert Normalizer().normalize("stilllll") == "still"


BAD_INPUTS = [
    "",
    " ",
    "\n\n\t",
    "a" * 4096,
    "i want to die " * 300,
    "😭" * 100,
    "🔪💊🪢",
    "\x00\x01\x02\x7f\u200b\u202e",
    "Мне плохо, I want to die, 死にたい, أريد أن أموت",
    "\ud800",  # a lone surrogate
    "&#0; &amp;&lt;&#x110000;",
    "'" * 50,
    "." * 4096,
    "ß" * 100,
    "\u0301" * 50,
]


@pytest.mark.parametrize("text", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_is_assessed_without_error(rules: SafetyRules, text: str) -> None:
    assert isinstance(normalize(text), str)
    for locale in ("en", "es", "zz"):
        assessment = rules.assess(text, locale)
        assert assessment.level in Level


def test_non_text_input(rules: SafetyRules) -> None:
    assert normalize(None) == ""
    assert normalize(12) == "12"
    assert rules.assess(None).level == Level.NONE  # type: ignore[arg-type]
    assert rules.assess(b"i want to die").level in Level  # type: ignore[arg-type]


def test_mixed_script_risk_is_found(rules: SafetyRules) -> None:
    assert rules.assess("Мне плохо, I want to die").level == Level.URGENT


def test_long_message_is_fast(rules: SafetyRules) -> None:
    text = ("I had a long day at work and then went to group. " * 90)[:4096]
    started = time.process_time()
    for _ in range(20):
        rules.assess(text)
    assert (time.process_time() - started) / 20 < 0.05


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    assert isinstance(normalize(text), str)


_RULES: list[SafetyRules] = []  # loaded once: a function-scoped fixture does not mix with @given


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("kil mysefdot.1!$@'’\u200b💊ñá")), max_size=80))
def test_tricky_alphabet_never_raises(text: str) -> None:
    if not _RULES:
        _RULES.append(loaded.safety_rules(Path(__file__).resolve().parents[2] / "content"))
    assert _RULES[0].assess(text).level in Level


def test_a_crash_in_normalization_falls_back_and_logs_no_text(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Normalizer, text: str) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(Normalizer, "_normalize", broken)
    assert Normalizer().normalize("I want to DIE!") == "i want to die"
    assert "RuntimeError" in caplog.text
    assert "die" not in caplog.text.casefold()
