"""`iopbot healthz`: exit 0 when the database answers and a scheduler ticked recently, else exit 1
with one line saying what is wrong. For Docker's HEALTHCHECK, systemd, a cron job or monitoring.

Imports no aiogram and migrates nothing: it answers in about a second, and a database that hangs
is given 5 s per check (11 s in all) before it counts as not answering."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from bot.cli.base import settings_from


def cmd_healthz(args: argparse.Namespace) -> int:
    from bot.clock import clock_from_environment
    from bot.services.health import check_database_url

    settings = settings_from(args)
    report = asyncio.run(check_database_url(settings, clock_from_environment().now()))
    if args.json:
        print(json.dumps(report.as_json()))
    elif report.healthy:
        print(report.summary())
    if not report.healthy:
        print(report.summary(), file=sys.stderr)
        return 1
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    healthz = add("healthz", cmd_healthz,
                  "exit 0 if the database answers and a scheduler ticked within [health] max_tick_age_seconds, "
                  "else exit 1 with one line saying what is wrong")
    healthz.add_argument("--json", action="store_true", help="print the report as one JSON object")
