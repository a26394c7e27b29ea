"""`iopbot report alerts`: how fast alerts were acknowledged, and how they ended
(bot/services/escalation/report.py)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.cli.base import settings_from, with_session


def cmd_report_alerts(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bot.clock import clock_from_environment
    from bot.services.escalation.report import format_report, response_times

    settings = settings_from(args)
    since = clock_from_environment().now() - timedelta(days=args.days) if args.days else None
    times = asyncio.run(with_session(settings, lambda session: response_times(session, since)))
    print(format_report(times, f"last {args.days} days" if args.days else "all time"))
    return 0


def register(sub: Any, add: Any) -> None:
    report = sub.add_parser("report", help="reports for the program").add_subparsers(dest="report_command",
                                                                                    required=True)
    alerts = add("alerts", cmd_report_alerts, "time to alert, acknowledgement and outcome; outcomes; coverage failures",
                 report)
    alerts.add_argument("--days", type=int, default=0, help="only the last N days (default: all)")
