"""`iopbot content check|preview|stats`: the content library as its authors work with it (check and
preview need no database and no Telegram)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.cli.base import settings_from, with_session


def cmd_content_check(args: argparse.Namespace) -> int:
    from bot.content.check import check_content

    settings = settings_from(args)
    directory = Path(args.dir) if args.dir else settings.content_dir
    problems = check_content(directory, grade_limit=settings.content.reading_grade_limit,
                             tracks=settings.content.tracks)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    print(f"{directory}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_content_preview(args: argparse.Namespace) -> int:
    from bot.content.preview import main as preview_main

    settings = settings_from(args)
    argv = [args.id, "--locale", args.locale, "--dir", str(Path(args.dir) if args.dir else settings.content_dir)]
    return preview_main(argv + (["--callbacks"] if args.callbacks else []), prog="iopbot content preview")


def cmd_content_stats(args: argparse.Namespace) -> int:
    from bot.content.library import load_library
    from bot.services.learning.stats import content_stats, format_stats, stats_json

    settings = settings_from(args)
    library = load_library(settings.content_dir, allow_drafts=True,  # drafts may have data too
                           tracks=None).library  # and so may files whose track names are wrong
    stats = asyncio.run(with_session(settings, lambda session: content_stats(session, library)))
    print(stats_json(stats) if args.json else format_stats(stats))
    return 0


def register(sub: Any, add: Any) -> None:
    content = sub.add_parser("content", help="the content library").add_subparsers(dest="content_command",
                                                                                  required=True)
    check = add("check", cmd_content_check, "check content files; prints file:line problems", content)
    check.add_argument("dir", nargs="?", help="content folder (default: [content] directory)")
    preview = add("preview", cmd_content_preview, "show an item as a participant gets it", content)
    preview.add_argument("id")
    preview.add_argument("--locale", default="en")
    preview.add_argument("--dir", help="content folder (default: [content] directory)")
    preview.add_argument("--callbacks", action="store_true", help="show each button's callback data")
    stats = add("stats", cmd_content_stats, "per item: delivered, helpful yes/no, saved; exercises started/finished",
                content)
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
