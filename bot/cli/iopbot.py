"""The `iopbot` command itself: the parser, assembled here from the command modules in COMMANDS
(in this order in `iopbot --help`), and `main`, which loads the configuration and runs one of them.

A command module exposes `register(sub, add)`: `sub` holds the top-level subcommands, and
`add(name, func, help, parent=sub)` adds a command that runs `func(args)`. Nothing registers itself
on import, and a command module imports nothing but bot.cli.base from this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from bot.cli import (
    content,
    db,
    doctor,
    export,
    healthz,
    invite,
    keys,
    people,
    report,
    run,
    safety,
    sandbox,
    schedule,
    sessions,
    webhook,
)
from bot.cli.base import settings_from
from bot.config import ConfigError, Settings
from bot.logging_setup import setup_logging

COMMANDS: tuple[ModuleType, ...] = (run, db, invite, content, safety, report, sandbox, schedule, sessions, doctor,
                                    people, keys, export, healthz, webhook)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iopbot", description="Support bot for virtual IOPs")
    parser.add_argument("--config", default="config.toml", help="path to config.toml (default: ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
            parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text)
        # Accept --config after the subcommand too: `iopbot run --config x.toml`.
        p.add_argument("--config", default=argparse.SUPPRESS, help="path to config.toml")
        p.set_defaults(func=func)
        return p

    for command in COMMANDS:
        command.register(sub, add)
    return parser


def _secrets(settings: Settings | None) -> list[str]:
    """Values that must never appear in a log line or an error (also when settings did not load)."""
    import os

    values = [os.environ.get(name, "") for name in ("BOT_TOKEN", "IOPBOT_DATA_KEY", "IOPBOT_NEW_DATA_KEY",
                                                    "IOPBOT_WEBHOOK_SECRET", "OPENAI_API_KEY")]
    if settings is not None:
        s = settings.secrets
        values += [s.bot_token, s.data_key, s.webhook_secret, s.llm_api_key]
    return [v for v in dict.fromkeys(values) if v]


def main(argv: Sequence[str] | None = None) -> int:
    """The `iopbot` command. Every subcommand loads and checks the whole configuration first; a
    wrong setting is one line on stderr (exit 2), never a traceback, and never shows a secret."""
    from bot.logging_setup import redact

    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = settings_from(args)
        setup_logging(settings.logging.level, _secrets(settings))
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(redact(f"config error: {exc}", _secrets(settings)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A failure nobody foresaw: the log has the traceback (secrets redacted by the formatter);
        # stderr gets one line with what to look at.
        import logging

        logging.getLogger("bot.cli").exception("iopbot %s failed", getattr(args, "command", "?"))
        print(redact(f"error: {type(exc).__name__}: {exc}", _secrets(settings)), file=sys.stderr)
        return 1

