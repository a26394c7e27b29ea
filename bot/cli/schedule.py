"""`iopbot schedule status`: what the scheduler did today, and how many check-ins get answered.

For each kind of scheduled row due today (the program's day, in `[program] default_timezone`):
how many are pending, being sent, sent, answered, expired (due while the bot was down longer
than the grace period), failed and cancelled. Then the check-in response rate of the last 7
days: answered out of the check-ins that reached participants (bot/services/scheduling/status.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bot.cli.base import settings_from, with_session


def cmd_schedule_status(args: argparse.Namespace) -> int:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.clock import clock_from_environment
    from bot.services.scheduling.status import ScheduleStatus, render, schedule_status

    settings = settings_from(args)
    now = clock_from_environment().now()

    async def work(session: AsyncSession) -> ScheduleStatus:
        return await schedule_status(session, now, args.timezone or settings.program.default_timezone,
                                     settings.checkin.expire_hours)

    status = asyncio.run(with_session(settings, work))
    if args.json:
        print(json.dumps({**asdict(status), "response_rate": status.response_rate}))
    else:
        print(render(status))
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    schedule = sub.add_parser("schedule", help="the scheduler: what is due, sent and answered").add_subparsers(
        dest="schedule_command", required=True)
    status = add("status", cmd_schedule_status, "counts per kind for today and the 7-day check-in response rate",
                 schedule)
    status.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    status.add_argument("--timezone", help="whose 'today' (default: [program] default_timezone)")
