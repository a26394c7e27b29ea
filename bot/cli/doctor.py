"""`iopbot doctor`: is every participant covered? Exit 1 when anyone's paging chain reaches nobody.

Imports no aiogram, so it answers in well under a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from bot.cli.base import settings_from, with_session


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.clock import clock_from_environment
    from bot.services.escalation.coverage import check_coverage, format_report, report_json

    settings = settings_from(args)
    now = clock_from_environment().now()
    report = asyncio.run(with_session(settings, lambda session: check_coverage(session, settings, now)))
    if args.json:
        print(json.dumps(report_json(report), ensure_ascii=False))
    else:
        print(format_report(report, now, settings.program.default_timezone))
    if report.uncovered:
        print(f"doctor: {len(report.uncovered)} participant(s) have nobody who can be paged", file=sys.stderr)
        return 1
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    doctor = add("doctor", cmd_doctor,
                 "check coverage: participants nobody can be paged for, staff without a chat, invites, "
                 "settings that weaken safety (exit 1 when a participant is uncovered)")
    doctor.add_argument("--json", action="store_true", help="one JSON object instead of the report")
