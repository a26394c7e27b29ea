"""`iopbot run`: the bot itself. The only command module that imports the runtime (and so aiogram),
inside its handler."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.cli.base import settings_from


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runtime import run

    settings = settings_from(args)
    asyncio.run(run(settings))
    return 0


def register(sub: Any, add: Any) -> None:
    add("run", cmd_run, "run the bot (polling or webhook, per config)")
