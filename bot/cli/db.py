"""`iopbot db upgrade`: create or upgrade the database schema (every command also does this first)."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.base import settings_from


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.db.engine import upgrade

    settings = settings_from(args)
    upgrade(settings.database.url)
    print("database is up to date")
    return 0


def register(sub: Any, add: Any) -> None:
    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    add("upgrade", cmd_db_upgrade, "create or upgrade the database schema", db)
