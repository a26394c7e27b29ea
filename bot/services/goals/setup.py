"""Wiring of goals into a running bot: called once by `bot.runtime.assemble`."""

from __future__ import annotations

from bot.context import AppContext
from bot.services.scheduling.outbox import OutboxWorker


def install_goals(ctx: AppContext, worker: OutboxWorker | None = None) -> None:
    """Register goals's senders and planners with the worker (nothing yet)."""
