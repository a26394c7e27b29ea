"""`python -m bot.content.check [DIR]`: validate the content library and print every problem.

Each problem is printed as `file:line: severity: message`. The exit code is 1 when there is an
error (a file that would not be delivered), 0 otherwise (warnings do not fail the check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.content.library import load_library
from bot.content.problems import Problem
from bot.content.validate import DEFAULT_GRADE_LIMIT

DEFAULT_CONTENT_DIR = Path("content")


def check_content(content_dir: Path, *, grade_limit: float = DEFAULT_GRADE_LIMIT) -> list[Problem]:
    """Every problem in the library under `content_dir`, sorted by file and line.

    Drafts are checked like everything else and reported as not delivered (a warning).
    """
    return load_library(content_dir, allow_drafts=False, grade_limit=grade_limit).problems


def build_parser(prog: str = "python -m bot.content.check") -> argparse.ArgumentParser:
    """The check's arguments; `prog` lets `iopbot content check` reuse it under its own name."""
    parser = argparse.ArgumentParser(prog=prog, description="Check the content library for mistakes.")
    parser.add_argument(
        "dir", nargs="?", type=Path, default=DEFAULT_CONTENT_DIR, help="content folder (default: content)"
    )
    parser.add_argument(
        "--grade-limit",
        type=float,
        default=DEFAULT_GRADE_LIMIT,
        help="highest reading grade allowed (default: 8)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m bot.content.check") -> int:
    """Run the check; returns the exit code (1 if any error, else 0)."""
    args = build_parser(prog).parse_args(argv)
    result = load_library(args.dir, allow_drafts=False, grade_limit=args.grade_limit)
    for problem in result.problems:
        print(problem)
    errors, warnings = len(result.errors), len(result.warnings)
    verdict = "FAILED" if errors else "OK"
    print(
        f"content check {verdict}: {len(result.files)} files, {errors} errors, {warnings} warnings",
        file=sys.stderr,
    )
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
