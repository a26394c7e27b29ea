"""Housekeeping that keeps the database small, run by the outbox worker's scheduler
(`worker.add_periodic`, wired in bot/runtime.py).

- The update ids already handled (`processed_updates`, the guard against Telegram delivering an
  update twice) are kept for a week: Telegram redelivers an update for at most 24 hours, so an
  older id can never come back, and without pruning the table grows by one row per message forever.
- An update's reply row (bot/services/scheduling/replies.py) is deleted once sent; one that could
  not be sent (failed) would keep the reply's text, so it goes after a day.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete

from bot.context import AppContext
from bot.db.models import ActionStatus, ProcessedUpdate, ScheduledAction

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


KEEP_FINISHED_REPLIES = timedelta(days=1)


async def prune_reply_rows(ctx: AppContext, now: datetime) -> int:
    """Remove reply rows finished without being deleted (failed after their retries) a day on."""
    async with ctx.sessionmaker() as session:
        result = await session.execute(
            delete(ScheduledAction).where(ScheduledAction.kind == "reply",
                                          ScheduledAction.status.not_in((ActionStatus.PENDING, ActionStatus.CLAIMED)),
                                          ScheduledAction.created_at < now - KEEP_FINISHED_REPLIES))
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
