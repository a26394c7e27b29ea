"""Measuring the rules layer: classify messages, and precision/recall on a labelled JSONL file.

Used by `iopbot safety classify` and `iopbot safety eval FILE.jsonl [--json] [--min-level L]`, and
runnable before the CLI exists:

    python -m bot.safety.evaluation FILE.jsonl [--json] [--min-level concern] [--locale en]

A labelled file has one JSON object a line with "text" and "label" (1 = risk, 0 = no risk).
The report groups the failures into classes (which rule caused a false positive; for a false
negative, the guard that cancelled a match or "no rule matched"), with counts and at most one
short truncated example each: the evaluation data is not reproduced.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.safety.levels import CONSTRUCT_PREFIX, Level
from bot.safety.rules import FALLBACK_LOCALE, Finding, SafetyRules
from bot.safety.semantic import REASON as SEMANTIC_REASON
from bot.safety.semantic import SemanticLayer

EXAMPLE_CHARS = 60  # the longest excerpt of a dataset text a report may show
TOP_CLASSES = 12
TOP_TERMS = 20


@dataclass(frozen=True)
class FailureClass:
    """A group of false positives or false negatives that share a cause."""

    kind: str  # "false_negative" or "false_positive"
    cause: str  # e.g. "rule:suicide/hopeless", "cancelled by guard:negation", "no rule matched"
    count: int
    example: str  # a short truncated excerpt of one normalized text


PAGES = Level.URGENT  # the level at which someone is paged


@dataclass
class BankReport:
    """What matters on rows labelled with a level and a construct (tests/safety/bank)."""

    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # expected level → found level → n
    constructs: dict[str, list[int]] = field(default_factory=dict)  # construct → [as expected, rows]
    languages: dict[str, list[int]] = field(default_factory=dict)  # language → [tp, fp, fn, tn] at min_level
    imminent: int = 0
    imminent_paging_nobody: int = 0
    hard_negatives: int = 0
    hard_negatives_paging: int = 0
    # Paging (urgent or above) is what wakes a clinician: its precision and recall, per language.
    paging: dict[str, list[int]] = field(default_factory=dict)  # language → [tp, fp, fn, tn]

    def add(self, row: Mapping[str, object], expected: Level, found: Level, threshold: Level) -> None:
        self.confusion.setdefault(expected.label, {}).setdefault(found.label, 0)
        self.confusion[expected.label][found.label] += 1
        construct = str(row.get("construct") or "-")
        ok = (found >= threshold) == (expected >= threshold)
        entry = self.constructs.setdefault(construct, [0, 0])
        entry[0] += ok
        entry[1] += 1
        language = str(row.get("lang") or row.get("locale") or "-")
        for table, level in ((self.languages, threshold), (self.paging, PAGES)):
            cell = table.setdefault(language, [0, 0, 0, 0])
            cell[[[3, 1], [2, 0]][expected >= level][found >= level]] += 1
        if expected == Level.IMMINENT:
            self.imminent += 1
            self.imminent_paging_nobody += found < PAGES
        if row.get("hard_negative") is True:
            self.hard_negatives += 1
            self.hard_negatives_paging += found >= PAGES


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


@dataclass
class EvalReport:
    """Precision, recall and F1 of the rules at `min_level`, with the commonest failure classes."""

    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    min_level: str = Level.CONCERN.label
    skipped: int = 0  # rows without a usable text or label
    failures: list[FailureClass] = field(default_factory=list)
    missed_terms: list[tuple[str, int]] = field(default_factory=list)  # words common in misses
    flagged_by_level: dict[str, int] = field(default_factory=dict)
    bank: BankReport | None = None  # rows labelled with a level and a construct (the project's bank)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "n": self.n,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "min_level": self.min_level,
            "skipped": self.skipped,
            "flagged_by_level": self.flagged_by_level,
            "failures": [asdict(f) for f in self.failures],
            "missed_terms": [list(t) for t in self.missed_terms],
            **({"bank": asdict(self.bank)} if self.bank is not None else {}),
        }

    def to_json(self) -> str:
        """One JSON object: precision, recall, f1, n, tp, fp, fn, tn, and the failure classes."""
        return json.dumps(self.to_dict(), ensure_ascii=False)


def parse_line(line: str) -> dict[str, object] | None:
    """A JSONL object with "text", or a plain line of text wrapped as {"text": line}; None if blank."""
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return {"text": line.rstrip("\n")}
        if isinstance(value, dict):
            return value
    return {"text": line.rstrip("\n")}


def classify_lines(
    lines: Iterable[str], rules: SafetyRules, locale: str = FALLBACK_LOCALE, *, semantic: SemanticLayer | None = None
) -> Iterator[dict[str, object]]:
    """Assess each line (plain text, or a JSON object with "text"); yield level, categories, reasons.

    The text itself is not repeated in the output. A JSON object's "id" and "locale" are honoured.
    """
    for number, line in enumerate(lines, 1):
        row = parse_line(line)
        if row is None:
            continue
        text = row.get("text")
        row_locale = str(row.get("locale") or locale)
        assessment = rules.assess(text if isinstance(text, str) else "", row_locale)
        if semantic is not None:
            assessment = assessment.combine(semantic.assess(text if isinstance(text, str) else "", row_locale))
        result: dict[str, object] = {"line": number}
        if "id" in row:
            result["id"] = row["id"]
        result.update(
            level=assessment.level.label,
            constructs=assessment.constructs,  # what the clinician's alert shows: "plan · means: medication"
            categories=[c.value for c in assessment.categories],
            reasons=[r for r in assessment.reasons if not r.startswith(CONSTRUCT_PREFIX)],
        )
        yield result


def _label(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    return None


def _excerpt(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1].rstrip() + "…"


def _deciding_reason(findings: Sequence[Finding]) -> str:
    active = [f for f in findings if f.level > Level.NONE]
    top = max(active, key=lambda f: f.level)
    return top.rule.reason


def _miss_cause(findings: Sequence[Finding], min_level: Level) -> str:
    below = [f for f in findings if Level.NONE < f.level < min_level]
    if below:
        best = max(below, key=lambda f: f.level)
        return f"below {min_level.label}: {best.rule.reason}"
    cancelled = [f for f in findings if f.guard is not None and not f.rule.is_marker]
    if cancelled:
        return f"cancelled by guard:{cancelled[0].guard} ({cancelled[0].rule.reason})"
    return "no rule matched"


def evaluate(
    rows: Iterable[Mapping[str, object]],
    rules: SafetyRules,
    min_level: Level | str = Level.CONCERN,
    locale: str = FALLBACK_LOCALE,
    *,
    semantic: SemanticLayer | None = None,
) -> EvalReport:
    """Compare the rules (and the semantic layer, if given) with labelled rows ({"text", "label"}):
    flagged means level >= min_level."""
    threshold = min_level if isinstance(min_level, Level) else Level.parse(min_level)
    tp = fp = fn = tn = skipped = 0
    causes: dict[tuple[str, str], list[object]] = {}
    by_level: Counter[str] = Counter()
    missed_words: Counter[str] = Counter()
    negative_words: Counter[str] = Counter()
    bank: BankReport | None = None
    rows = list(rows)
    by_meaning = _semantic_levels(rows, semantic, locale)
    for index, row in enumerate(rows):
        text, label = row.get("text"), _label(row.get("label"))
        expected = _expected_level(row.get("level"))
        if expected is not None and label is None:
            label = int(expected >= threshold)
        if not isinstance(text, str) or label is None:
            skipped += 1
            continue
        findings = rules.explain(text, str(row.get("locale") or locale))
        level = max((f.level for f in findings), default=Level.NONE)
        semantic_decided = by_meaning[index] > level
        level = max(level, by_meaning[index])
        by_level[level.label] += 1
        if expected is not None:
            bank = bank or BankReport()
            bank.add(row, expected, level, threshold)
        flagged = level >= threshold
        if flagged and label:
            tp += 1
            continue
        normalized = rules.normalize(text)
        if not label:
            negative_words.update(set(normalized.split()))
        if flagged:
            fp += 1
            key = ("false_positive", SEMANTIC_REASON if semantic_decided else _deciding_reason(findings))
        elif label:
            fn += 1
            key = ("false_negative", _miss_cause(findings, threshold))
            missed_words.update(set(normalized.split()))
        else:
            tn += 1
            continue
        entry = causes.setdefault(key, [0, _excerpt(normalized)])
        entry[0] = int(entry[0]) + 1  # type: ignore[call-overload]
    failures = [
        FailureClass(kind, cause, int(count), str(example))  # type: ignore[call-overload]
        for (kind, cause), (count, example) in causes.items()
    ]
    failures.sort(key=lambda f: (-f.count, f.kind, f.cause))
    return EvalReport(
        n=tp + fp + fn + tn,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        min_level=threshold.label,
        skipped=skipped,
        failures=failures[: TOP_CLASSES * 2],
        missed_terms=_distinctive(missed_words, negative_words, fn, fp + tn),
        flagged_by_level=dict(by_level),
        bank=bank,
    )


def _semantic_levels(rows: list[Mapping[str, object]], semantic: SemanticLayer | None, locale: str) -> list[Level]:
    """The semantic layer's level for each row (NONE without it), in batches: far faster than one by one."""
    if semantic is None:
        return [Level.NONE] * len(rows)
    texts = [text if isinstance(text := row.get("text"), str) else "" for row in rows]
    locales = [str(row.get("locale") or locale) for row in rows]
    return [assessment.level for assessment in semantic.assess_many(texts, locales)]


def _expected_level(value: object) -> Level | None:
    if not isinstance(value, str):
        return None
    try:
        return Level.parse(value)
    except ValueError:
        return None


_WORD = re.compile(r"[a-z]{3,}")


def _distinctive(
    missed: Counter[str], negatives: Counter[str], n_missed: int, n_negative: int
) -> list[tuple[str, int]]:
    """Words frequent in missed risk texts and rare in no-risk texts: leads for new rules."""
    if not n_missed:
        return []
    scored = []
    for word, count in missed.items():
        if count < 3 or not _WORD.fullmatch(word):
            continue
        rate_missed = count / n_missed
        rate_negative = (negatives.get(word, 0) + 1) / (n_negative + 2)
        scored.append((rate_missed * math.log(rate_missed / rate_negative), word, count))
    scored.sort(reverse=True)
    return [(word, count) for score, word, count in scored[:TOP_TERMS] if score > 0]


def format_report(report: EvalReport) -> str:
    """The report for a person: the figures, then the commonest failure classes."""
    lines = [
        f"n={report.n}  flagged = level {report.min_level} or above",
        f"precision {report.precision:.3f}   recall {report.recall:.3f}   F1 {report.f1:.3f}",
        f"tp {report.tp}   fp {report.fp}   fn {report.fn}   tn {report.tn}",
        "levels: " + ", ".join(f"{k} {v}" for k, v in sorted(report.flagged_by_level.items())),
    ]
    if report.skipped:
        lines.append(f"skipped {report.skipped} rows without a text or a 0/1 label")
    for kind, title in (
        ("false_negative", "Missed (false negatives)"),
        ("false_positive", "False alarms (false positives)"),
    ):
        classes = [f for f in report.failures if f.kind == kind][:TOP_CLASSES]
        if not classes:
            continue
        lines += ["", f"{title}, by cause:"]
        lines += [f'  {f.count:6d}  {f.cause}\n          e.g. "{f.example}"' for f in classes]
    if report.bank is not None:
        lines += ["", *_format_bank(report.bank, report.min_level)]
    if report.missed_terms:
        lines += ["", "Words common in missed texts and rare in no-risk texts:"]
        lines.append("  " + ", ".join(f"{word} ({count})" for word, count in report.missed_terms))
    return "\n".join(lines)


def _format_bank(bank: BankReport, min_level: str) -> list[str]:
    order = [level.label for level in Level]
    lines = ["Levels (rows: expected, columns: found):", "  expected   " + "".join(f"{n:>10}" for n in order)]
    for expected in order:
        row = bank.confusion.get(expected, {})
        if row:
            lines.append(f"  {expected:<10} " + "".join(f"{row.get(found, 0):>10}" for found in order))
    lines += ["", "Paging (urgent or above), by language:"]
    for language, (tp, fp, fn, tn) in sorted(bank.paging.items()):
        lines.append(f"  {language:<6} precision {_ratio(tp, tp + fp):.3f}   recall {_ratio(tp, tp + fn):.3f}"
                     f"   (tp {tp} fp {fp} fn {fn} tn {tn})")
    lines += [
        f"Imminent messages that would page nobody: {bank.imminent_paging_nobody} of {bank.imminent}",
        f"Hard negatives that would page: {bank.hard_negatives_paging} of {bank.hard_negatives}"
        f" ({_ratio(bank.hard_negatives_paging, bank.hard_negatives):.1%})",
        "",
        f"As expected at {min_level}, by construct (risk: flagged; hard negatives: not flagged):",
    ]
    for construct, (ok, n) in sorted(bank.constructs.items(), key=lambda item: item[1][0] / item[1][1]):
        lines.append(f"  {construct:<20} {ok:>4} of {n:<4} {_ratio(ok, n):.2f}")
    return lines


def read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    """The rows of a JSONL file, or of every *.jsonl in a folder (blank and unreadable lines are skipped)."""
    paths = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    for one in paths:
        with one.open(encoding="utf-8") as handle:
            for line in handle:
                row = parse_line(line)
                if row is not None:
                    yield row


def default_content_dir() -> Path:
    """The content folder of this checkout (…/content next to the bot package)."""
    return Path(__file__).resolve().parents[2] / "content"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.safety.evaluation", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help='labelled JSONL: one {"text", "label"} object a line')
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    parser.add_argument("--min-level", default="concern", help="flagged means this level or above (default concern)")
    parser.add_argument("--locale", default=FALLBACK_LOCALE, help="locale of rows without one (default en)")
    parser.add_argument("--content", type=Path, default=default_content_dir(), help="content folder with the rules")
    args = parser.parse_args(argv)
    try:
        min_level = Level.parse(args.min_level)
    except ValueError as error:
        parser.error(str(error))
    rules = SafetyRules.load(args.content)
    report = evaluate(read_jsonl(args.file), rules, min_level, args.locale)
    print(report.to_json() if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
