"""Wiring of medications into a running bot: called once by `bot.runtime.assemble`."""

from __future__ import annotations

from bot.context import AppContext
from bot.services.scheduling.outbox import OutboxWorker


def install_medications(ctx: AppContext, worker: OutboxWorker | None = None) -> None:
    """Register medications's senders and planners with the worker (nothing yet)."""
