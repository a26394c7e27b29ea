"""`iopbot keys status` and `iopbot keys rotate`: the data key that encrypts free text at rest
(bot/services/data_key.py). Imports no aiogram."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from typing import Any

from bot.cli.base import settings_from, with_session

NEW_KEY_VARIABLE = "IOPBOT_NEW_DATA_KEY"


def cmd_keys_status(args: argparse.Namespace) -> int:
    from bot.services.data_key import format_status, key_status

    settings = settings_from(args)
    status = asyncio.run(with_session(settings, lambda session: key_status(session, settings.secrets.data_key),
                                      check_key=False))
    print(format_status(status))
    mismatch = bool(status.stored and status.given and status.stored != status.given)
    return 1 if mismatch or status.rotation else 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from bot.clock import clock_from_environment
    from bot.db.engine import make_engine, make_sessionmaker, upgrade_async
    from bot.services.data_key import rotate

    settings = settings_from(args)
    new_key = os.environ.get(NEW_KEY_VARIABLE, "")
    clock = clock_from_environment()

    async def work() -> Any:
        await upgrade_async(settings.database.url)
        engine = make_engine(settings.database.url)
        try:
            return await rotate(make_sessionmaker(engine), settings.secrets.data_key, new_key, clock.now,
                                batch_size=args.batch_size, max_batches=args.max_batches,
                                progress=lambda line: print(line, flush=True))
        finally:
            await engine.dispose()

    result = asyncio.run(work())  # DataKeyError is a ConfigError: one line, exit 2
    if not result.finished:
        return 3
    print(f"done: {result.re_encrypted} value(s) re-encrypted. Now set IOPBOT_DATA_KEY to the new key (and remove "
          f"{NEW_KEY_VARIABLE}), then start the bot. Keep the old key until you have checked it starts.")
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="the data key that encrypts free text at rest").add_subparsers(
        dest="keys_command", required=True)
    add("status", cmd_keys_status, "which key the database uses, whether IOPBOT_DATA_KEY matches, what is "
                                   "encrypted (exit 1 on a mismatch or an unfinished rotation)", keys)
    rotate = add("rotate", cmd_keys_rotate,
                 f"re-encrypt everything from IOPBOT_DATA_KEY (the current key; unset for plain text) to "
                 f"{NEW_KEY_VARIABLE}, in resumable batches; stop the bot first", keys)
    rotate.add_argument("--batch-size", type=_positive, default=500, help="rows per committed batch (default 500)")
    rotate.add_argument("--max-batches", type=_positive, default=None,
                        help="stop after this many batches (run again to go on); default: all")
