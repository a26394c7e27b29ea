"""Wiring of outreach into a running bot: called once by `bot.runtime.assemble`."""

from __future__ import annotations

from bot.context import AppContext
from bot.services.scheduling.outbox import OutboxWorker


def install_outreach(ctx: AppContext, worker: OutboxWorker | None = None) -> None:
    """Register outreach's senders and planners with the worker (nothing yet)."""
