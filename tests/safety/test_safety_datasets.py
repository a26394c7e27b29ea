"""The acceptance targets on the shared public evaluation sets (skipped when they are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.safety.evaluation import evaluate, read_jsonl
from bot.safety.rules import SafetyRules

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = [REPO.parent / "shared" / "data", Path("/work/shared/data")]
DATA = next((path for path in CANDIDATES if path.is_dir()), None)

pytestmark = pytest.mark.skipif(
    DATA is None, reason=f"evaluation data not found (looked in {', '.join(map(str, CANDIDATES))})"
)


def _report(rules: SafetyRules, name: str):  # type: ignore[no-untyped-def]
    assert DATA is not None
    path = DATA / name
    assert path.is_file(), f"{path} is missing from the evaluation data folder"
    return evaluate(read_jsonl(path), rules, "concern")


def test_twitter_suicidal_intention_targets(rules: SafetyRules) -> None:
    report = _report(rules, "twitter_suicidal_intention.jsonl")
    assert report.n > 8000
    assert report.recall >= 0.80, report.to_json()
    assert report.precision >= 0.80, report.to_json()


def test_suicidal_tweet_detection_far_above_the_naive_baseline(rules: SafetyRules) -> None:
    report = _report(rules, "suicidal_tweet_detection.jsonl")
    assert report.recall >= 0.45, report.to_json()  # the eight-phrase baseline: 0.15
    assert report.precision >= 0.80, report.to_json()
