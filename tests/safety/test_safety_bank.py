"""The project's own test bank (tests/safety/bank): realistic messages labelled by level and construct.

dev/ (and dev3/, a third batch written later) is what the rules are tuned on; holdout/ is the
untouched 30% (fixed by a hash of each id in split.py before any tuning) and is only measured;
holdout2/ is a second batch by other writers, written after the rules and never used to tune them.
The floors below are today's figures less a small margin, so a rule change that loses ground fails
here; the issue's targets and the current figures are in the README's safety section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.safety.evaluation import evaluate, read_jsonl
from bot.safety.levels import Level
from bot.safety.rules import SafetyRules
from tests.safety.bank.split import held_out

BANK = Path(__file__).resolve().parent / "bank"


def _rows(split: str) -> list[dict[str, object]]:
    return list(read_jsonl(BANK / split))


def test_the_bank_is_large_bilingual_and_hard() -> None:
    rows = _rows("dev") + _rows("holdout")
    english = [r for r in rows if r["lang"] == "en"]
    spanish = [r for r in rows if r["lang"] in ("es", "mixed")]
    assert len(rows) >= 1000 and len(english) >= 600 and len(spanish) >= 400
    hard = [r for r in rows if r["hard_negative"]]
    assert len(hard) / len(rows) >= 0.40
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["level"] in {level.label for level in Level}, row["id"]
        assert isinstance(row["construct"], str) and row["construct"], row["id"]


def test_the_holdout_split_is_the_one_fixed_by_hash() -> None:
    # Nobody moved rows between the splits: each row sits where the hash of its id put it.
    for split, expected in (("dev", False), ("holdout", True)):
        for row in _rows(split):
            assert held_out(str(row["id"])) is expected, row["id"]
    total = len(_rows("dev")) + len(_rows("holdout"))
    assert 0.25 <= len(_rows("holdout")) / total <= 0.35


# (split, language) → floors for paging (urgent or above): recall, precision; and for the whole
# split: the share of hard negatives that page, and of imminent messages that page nobody.
# dev3/ is a third batch written with the [[construct]] tables and tuned on, like dev/.
FLOORS = {
    ("dev", "en"): (0.93, 0.93),
    ("dev", "es"): (0.93, 0.93),
    ("dev3", "en"): (0.95, 0.93),
    ("dev3", "es"): (0.95, 0.92),
    ("holdout", "en"): (0.43, 0.85),
    ("holdout", "es"): (0.54, 0.88),
    ("holdout2", "en"): (0.39, 0.87),
    ("holdout2", "es"): (0.33, 0.88),
}
HARD_NEGATIVES_PAGING = {"dev": 0.045, "dev3": 0.05, "holdout": 0.08, "holdout2": 0.075}
IMMINENT_PAGING_NOBODY = {"dev": 0.06, "dev3": 0.03, "holdout": 0.55, "holdout2": 0.70}


@pytest.mark.parametrize("split", ["dev", "dev3", "holdout", "holdout2"])
def test_figures_do_not_fall(rules: SafetyRules, split: str) -> None:
    report = evaluate(_rows(split), rules, Level.URGENT)
    bank = report.bank
    assert bank is not None
    for (name, language), (recall, precision) in FLOORS.items():
        if name != split:
            continue
        tp, fp, fn, _ = bank.paging[language]
        assert tp / (tp + fn) >= recall, f"{split}/{language} paging recall {tp / (tp + fn):.3f} < {recall}"
        assert tp / (tp + fp) >= precision, f"{split}/{language} paging precision {tp / (tp + fp):.3f} < {precision}"
    assert bank.hard_negatives_paging / bank.hard_negatives <= HARD_NEGATIVES_PAGING[split]
    assert bank.imminent_paging_nobody / bank.imminent <= IMMINENT_PAGING_NOBODY[split]


def test_the_report_shows_what_matters(rules: SafetyRules, tmp_path: Path) -> None:
    rows = [
        {"text": "took all my pills an hour ago", "level": "imminent", "construct": "act_in_progress",
         "lang": "en", "hard_negative": False},
        {"text": "no thoughts of hurting myself this week", "level": "none", "construct": "denial",
         "lang": "en", "hard_negative": True},
        {"text": "ya no aguanto mas, quiero morirme", "level": "urgent", "construct": "active_ideation",
         "lang": "es", "locale": "en", "hard_negative": False},
    ]
    path = tmp_path / "bank.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    report = evaluate(read_jsonl(path), rules, Level.URGENT)
    assert report.bank is not None
    assert report.bank.imminent_paging_nobody == 0 and report.bank.hard_negatives_paging == 0
    assert report.bank.confusion["imminent"] == {"imminent": 1}
    assert report.bank.paging["es"] == [1, 0, 0, 0]


# The same with the semantic layer, as the bot runs (bot/safety/semantic.py). It learned from dev/,
# dev3/, dev4/ and dev5/ (so figures there say nothing and are not checked here); the held-out
# figures and everyday/ (ordinary messages, measurement only) are today's less a margin, with the
# thresholds fixed beforehand on the written banks (dev4/, then dev5/ before it was learned from).
# Nobody may change a rule, a threshold or a dev bank to make a held-out floor pass: that would be
# tuning on it. (2026-12-05, dev5/ added to what it learns from: holdout2 recall EN 0.60 → 0.64,
# ES 0.56 → 0.66, imminent paging nobody 105 → 85 of 225, hard negatives paging 25 → 31 of 224.)
LAYERED_FLOORS = {
    ("holdout", "en"): (0.66, 0.84),
    ("holdout", "es"): (0.77, 0.78),
    ("holdout2", "en"): (0.61, 0.87),
    ("holdout2", "es"): (0.63, 0.85),
    ("everyday", "en"): (0.82, 0.85),
    ("everyday", "es"): (0.64, 0.62),
}
LAYERED_HARD_NEGATIVES_PAGING = {"holdout": 0.155, "holdout2": 0.15, "everyday": 0.16}
LAYERED_IMMINENT_PAGING_NOBODY = {"holdout": 0.27, "holdout2": 0.40, "everyday": 0.20}


@pytest.fixture(scope="module")
def semantic(rules: SafetyRules):  # type: ignore[no-untyped-def]
    from bot.safety.semantic import SemanticLayer

    return SemanticLayer.load(rules)


@pytest.mark.parametrize("split", ["holdout", "holdout2", "everyday"])
def test_figures_with_the_semantic_layer_do_not_fall(rules: SafetyRules, semantic, split: str) -> None:  # type: ignore[no-untyped-def]
    report = evaluate(_rows(split), rules, Level.URGENT, semantic=semantic)
    bank = report.bank
    assert bank is not None
    for (name, language), (recall, precision) in LAYERED_FLOORS.items():
        if name != split:
            continue
        tp, fp, fn, _ = bank.paging[language]
        assert tp / (tp + fn) >= recall, f"{split}/{language} paging recall {tp / (tp + fn):.3f} < {recall}"
        assert tp / (tp + fp) >= precision, f"{split}/{language} paging precision {tp / (tp + fp):.3f} < {precision}"
    assert bank.hard_negatives_paging / bank.hard_negatives <= LAYERED_HARD_NEGATIVES_PAGING[split]
    assert bank.imminent_paging_nobody / bank.imminent <= LAYERED_IMMINENT_PAGING_NOBODY[split]
