"""`iopbot safety classify|eval|train-semantic`: run the distress layers (the phrase rules and, unless
`--rules-only` or `[semantic] enabled = false`, the semantic layer) over text from a file or stdin,
the way a clinician checks a change to the rules (no database, no Telegram)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.cli.base import settings_from


def cmd_safety_classify(args: argparse.Namespace) -> int:
    import json

    from bot.safety.evaluation import classify_lines
    from bot.safety.rules import SafetyRules

    settings = settings_from(args)
    rules = SafetyRules.load(settings.content_dir)
    for row in classify_lines(sys.stdin, rules, args.locale, semantic=_semantic(args, settings, rules)):
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


def cmd_safety_eval(args: argparse.Namespace) -> int:
    from bot.safety.evaluation import evaluate, format_report, read_jsonl
    from bot.safety.levels import Level
    from bot.safety.rules import SafetyRules

    settings = settings_from(args)
    if not Path(args.file).exists():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    try:
        min_level = Level.parse(args.min_level)
    except ValueError as exc:
        print(f"error: --min-level: {exc}", file=sys.stderr)
        return 2
    rules = SafetyRules.load(settings.content_dir)
    report = evaluate(read_jsonl(Path(args.file)), rules, min_level, args.locale,
                      semantic=_semantic(args, settings, rules))
    print(report.to_json() if args.json else format_report(report))
    return 0


def _semantic(args: argparse.Namespace, settings: Any, rules: Any) -> Any:
    """The semantic layer as the bot runs it, or None (`--rules-only`, or turned off in config)."""
    if args.rules_only or not settings.semantic.enabled:
        return None
    from bot.safety.semantic import SemanticLayer

    return SemanticLayer.load(rules)


def cmd_safety_train_semantic(args: argparse.Namespace) -> int:
    from bot.safety.encoder import shared_encoder
    from bot.safety.semantic import MODEL_FILE, SemanticModel, train, training_rows

    bank_dir = Path(args.banks)
    if not (bank_dir / "dev").is_dir():
        print(f"error: {bank_dir}: no dev bank here (expected {bank_dir}/dev/*.jsonl)", file=sys.stderr)
        return 2
    rows = training_rows(bank_dir)
    vectors = shared_encoder().encode_many([str(row["text"]) for row in rows])
    model = train(rows, vectors, bank_dir)
    out = Path(args.out) if args.out else MODEL_FILE
    model.save(out)
    SemanticModel.load(out)
    print(f"trained on {len(rows)} rows ({', '.join(model.trained_on)}); wrote {out}")
    return 0


def register(sub: Any, add: Any) -> None:
    safety = sub.add_parser("safety", help="distress detection tools").add_subparsers(dest="safety_command",
                                                                                     required=True)
    classify = add("classify", cmd_safety_classify, "assess lines (or JSONL with text) from stdin", safety)
    classify.add_argument("--locale", default="en")
    classify.add_argument("--rules-only", action="store_true", help="the phrase rules without the semantic layer")
    evaluation = add("eval", cmd_safety_eval, "precision and recall on labelled JSONL (text, label)", safety)
    evaluation.add_argument("file")
    evaluation.add_argument("--json", action="store_true", help="last line: one JSON object")
    evaluation.add_argument("--min-level", default="concern", help="flagged means this level or above")
    evaluation.add_argument("--locale", default="en")
    evaluation.add_argument("--rules-only", action="store_true", help="the phrase rules without the semantic layer")
    training = add("train-semantic", cmd_safety_train_semantic,
                   "retrain the semantic layer on the written dev banks (never a held-out bank)", safety)
    training.add_argument("--banks", default=str(Path(__file__).resolve().parents[2] / "tests" / "safety" / "bank"))
    training.add_argument("--out", default="", help="where to write it (default: bot/safety/semantic_model.json)")
