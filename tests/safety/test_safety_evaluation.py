"""The evaluation tooling: classify lines, and the report's arithmetic on a handmade set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.safety.evaluation import EXAMPLE_CHARS, classify_lines, evaluate, format_report, main
from bot.safety.rules import SafetyRules

# Handmade: 3 risky and 3 not. Expected with the shipped rules: tp 2, fn 1, fp 1, tn 2.
ROWS = [
    {"text": "I want to die", "label": 1},
    {"text": "I feel hopeless and alone", "label": 1},
    {"text": "everything is grey, some days are heavier than the others", "label": 1},
    {"text": "I'm going to kill myself if they cancel my show lol", "label": 0},
    {"text": "see you at group tomorrow", "label": 0},
    {"text": "I would never hurt myself", "label": 0},
]


def test_report_arithmetic(rules: SafetyRules) -> None:
    report = evaluate(ROWS, rules, "concern")
    assert (report.tp, report.fp, report.fn, report.tn, report.n) == (2, 1, 1, 2, 6)
    assert report.precision == pytest.approx(2 / 3)
    assert report.recall == pytest.approx(2 / 3)
    assert report.f1 == pytest.approx(2 / 3)


def test_min_level_changes_what_counts_as_flagged(rules: SafetyRules) -> None:
    report = evaluate(ROWS, rules, "urgent")
    assert (report.tp, report.fp, report.fn, report.tn) == (1, 1, 2, 2)  # hopeless is concern only
    assert any(f.cause.startswith("below urgent") for f in report.failures)


def test_failure_classes_and_short_examples(rules: SafetyRules) -> None:
    report = evaluate(ROWS, rules, "concern")
    kinds = {(f.kind, f.cause) for f in report.failures}
    assert ("false_positive", "rule:suicide/kill_myself") in kinds
    assert ("false_negative", "no rule matched") in kinds
    assert all(len(f.example) <= EXAMPLE_CHARS for f in report.failures)


def test_to_json_has_the_figures(rules: SafetyRules) -> None:
    data = json.loads(evaluate(ROWS, rules).to_json())
    for key in ("precision", "recall", "f1", "n", "tp", "fp", "fn", "tn"):
        assert key in data
    assert data["n"] == 6


def test_format_report(rules: SafetyRules) -> None:
    text = format_report(evaluate(ROWS, rules))
    assert "precision 0.667" in text and "recall 0.667" in text
    assert "Missed" in text and "False alarms" in text


def test_rows_without_a_label_are_skipped(rules: SafetyRules) -> None:
    report = evaluate([{"text": "hi"}, {"label": 1}, {"text": "I want to die", "label": "1"}], rules)
    assert report.skipped == 2 and report.n == 1 and report.tp == 1


def test_empty_set(rules: SafetyRules) -> None:
    report = evaluate([], rules)
    assert (report.precision, report.recall, report.f1) == (0.0, 0.0, 0.0)


def test_classify_plain_and_jsonl_lines(rules: SafetyRules) -> None:
    lines = ["I want to die\n", "\n", json.dumps({"id": "m7", "text": "quiero morir", "locale": "es"}), "hello"]
    results = list(classify_lines(lines, rules, "en"))
    assert [r["level"] for r in results] == ["urgent", "urgent", "none"]
    assert results[0]["reasons"] == ["rule:suicide/want_to_die"] and results[0]["line"] == 1
    assert results[0]["constructs"] == "passive ideation"  # the label a clinician's alert shows
    assert results[1]["id"] == "m7"
    assert all("text" not in r for r in results)  # the output never repeats the message


def test_module_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "set.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in ROWS), encoding="utf-8")
    assert main([str(data), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["tp"] == 2 and figures["n"] == 6
    assert main([str(data), "--min-level", "urgent"]) == 0
    assert "flagged = level urgent or above" in capsys.readouterr().out
