"""Housekeeping: handled update ids are forgotten after a week (Telegram redelivers an update for
at most a day), so the duplicate guard keeps working while the table stops growing forever."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.context import AppContext
from bot.db.models import ProcessedUpdate
from bot.services.scheduling.maintenance import prune_processed_updates
from bot.services.scheduling.outbox import OutboxWorker


async def test_update_ids_older_than_a_week_are_forgotten_and_recent_ones_kept(
        ctx: AppContext, clock: ManualClock) -> None:
    now = clock.now()
    async with ctx.sessionmaker() as session:
        for update_id, age in ((1, timedelta(days=30)), (2, timedelta(days=7, minutes=1)),
                               (3, timedelta(days=6, hours=23)), (4, timedelta(hours=1))):
            session.add(ProcessedUpdate(update_id=update_id, received_at=now - age))
        await session.commit()
    assert await prune_processed_updates(ctx, now) == 2
    assert await prune_processed_updates(ctx, now) == 0  # nothing more to do
    async with ctx.sessionmaker() as session:
        kept = sorted((await session.scalars(select(ProcessedUpdate.update_id))).all())
    assert kept == [3, 4]


async def test_a_failing_periodic_job_is_logged_and_does_not_stop_the_worker(
        ctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    worker = OutboxWorker(ctx, None)  # type: ignore[arg-type]  # nothing is sent
    seen: list[datetime] = []

    async def broken(now: datetime) -> None:
        seen.append(now)
        raise RuntimeError("database restarting")

    with pytest.raises(ValueError, match="positive"):
        worker.add_periodic("never", 0, broken)
    with caplog.at_level(logging.ERROR):
        await worker.run_periodic("prune", broken)
    assert seen == [ctx.clock.now()]
    assert "periodic job prune failed" in caplog.text
