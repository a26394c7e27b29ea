"""`iopbot sandbox`: try the whole bot in a browser. The server (and with it aiogram and the bot) is
imported only when the command runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.cli.base import settings_from
from bot.logging_setup import setup_logging


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is a number from 0 to 65535 (0 picks a free one)")
    return port


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox.server import SandboxError, SandboxOptions, run_sandbox

    # The bot's routine log lines would bury the address; --verbose shows them.
    setup_logging("DEBUG" if args.verbose else "WARNING")
    options = SandboxOptions(port=args.port, content_dir=args.content, data_dir=args.data)
    try:
        asyncio.run(run_sandbox(settings_from(args), options))
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


def register(sub: Any, add: Any) -> None:
    p = add("sandbox", cmd_sandbox,
            "try the whole bot in a browser: a local Telegram stand-in, the bot and a demo program "
            "(listens on 127.0.0.1 only)")
    p.add_argument("--port", type=_port, default=8080, help="port of the chat page (default 8080; 0 = any free port)")
    p.add_argument("--content", type=Path, metavar="DIR",
                   help="a content folder to run with (default: [content] directory from the config)")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="keep the sandbox's database here between runs (default: a temporary folder)")
    p.add_argument("--verbose", action="store_true", help="show the bot's log")

