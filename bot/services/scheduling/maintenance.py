"""Housekeeping that keeps the database small, run by the outbox worker's scheduler
(`worker.add_periodic`, wired in bot/runtime.py).

- The update ids already handled (`processed_updates`, the guard against Telegram delivering an
  update twice) are kept for a week: Telegram redelivers an update for at most 24 hours, so an
  older id can never come back, and without pruning the table grows by one row per message forever.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete

from bot.context import AppContext
from bot.db.models import ProcessedUpdate

log = logging.getLogger(__name__)

KEEP_PROCESSED_UPDATES = timedelta(days=7)
EVERY_SECONDS = 3600.0


async def prune_processed_updates(ctx: AppContext, now: datetime) -> int:
    """Forget handled update ids older than a week; returns how many were removed."""
    async with ctx.sessionmaker() as session:
        result = await session.execute(
            delete(ProcessedUpdate).where(ProcessedUpdate.received_at < now - KEEP_PROCESSED_UPDATES))
        await session.commit()
    removed = int(getattr(result, "rowcount", 0) or 0)
    if removed:
        log.info("pruned %d handled update id(s) older than %s", removed, KEEP_PROCESSED_UPDATES)
    return removed
