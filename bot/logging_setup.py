"""Logging: ids and codes only. Message text, answers and names never reach a log line.

aiogram's own "Update id=… is handled" lines carry no text, but its event logger can, so it is
kept at WARNING. The privacy test runs a whole conversation and searches the log for what was typed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then blanks out secrets (the bot token is part of every Bot API URL, so an
    exception about a request would otherwise carry it into the log, tracebacks included)."""

    def __init__(self, secrets: Iterable[str], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=FORMAT, force=True)
    formatter = RedactingFormatter(secrets)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # "Running job ..." at every tick
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
