"""`iopbot safety classify|eval`: run the distress rules over text from a file or stdin, the way a
clinician checks a change to the rules (no database, no Telegram)."""

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
    for row in classify_lines(sys.stdin, rules, args.locale):
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
    report = evaluate(read_jsonl(Path(args.file)), rules, min_level, args.locale)
    print(report.to_json() if args.json else format_report(report))
    return 0


def register(sub: Any, add: Any) -> None:
    safety = sub.add_parser("safety", help="distress detection tools").add_subparsers(dest="safety_command",
                                                                                     required=True)
    classify = add("classify", cmd_safety_classify, "assess lines (or JSONL with text) from stdin", safety)
    classify.add_argument("--locale", default="en")
    evaluation = add("eval", cmd_safety_eval, "precision and recall on labelled JSONL (text, label)", safety)
    evaluation.add_argument("file")
    evaluation.add_argument("--json", action="store_true", help="last line: one JSON object")
    evaluation.add_argument("--min-level", default="concern", help="flagged means this level or above")
    evaluation.add_argument("--locale", default="en")
