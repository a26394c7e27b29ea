"""`iopbot run`: the bot itself. The only command module that imports the runtime (and so aiogram),
inside its handler.

One bot may run as several processes on one PostgreSQL, each in a role (`--mode`, default
`[telegram] mode`): "webhook" (serves the webhook behind a load balancer), "polling" (polls when it
holds the poller role: one process per bot), "worker" or `--no-poll` (works the schedule only).
Every role runs the scheduler."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.cli.base import settings_from
from bot.config import TELEGRAM_MODES

MODES = TELEGRAM_MODES


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runtime import run

    settings = settings_from(args)
    mode = "worker" if args.no_poll else args.mode
    if mode == "webhook" and not settings.secrets.webhook_secret:
        print("IOPBOT_WEBHOOK_SECRET is not set: a webhook without a secret would accept anyone's updates.",
              file=sys.stderr)
        return 2
    asyncio.run(run(settings, mode))
    return 0


def register(sub: Any, add: Any) -> None:
    p = add("run", cmd_run, "run the bot: polling, webhook, or schedule-only worker")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="this process's role (default: [telegram] mode). polling: polls when elected "
                        "(one process per bot); webhook: serves [telegram] webhook_listen_host:port; "
                        "worker: the schedule only. Every role runs the scheduler")
    p.add_argument("--no-poll", action="store_true", help="the same as --mode worker")
