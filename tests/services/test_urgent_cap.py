"""The urgent lane's cap holds for the whole bot, not per worker (issue 16): crisis replies and
pages of several workers together keep `messages_per_second` with a burst of `burst`, as one
process's urgent lane does; a database that does not answer never holds a crisis reply back.
On an injected clock (no wall time) with the in-memory store, and the PostgreSQL statement against
a real database. The same measured at the local Bot API with three real processes:
tests/chaos/test_global_rate.py."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.db.engine import make_engine
from bot.telegram import send_budget
from bot.telegram.send_budget import MemoryBudgetStore, PostgresBudgetStore, SharedBudget
from tests.services.test_send_budget import SETTINGS, SLOT, FakeTime, budget, max_in_window
from tests.support.databases import create_postgres_database

BURST = SETTINGS.burst  # 5, as shipped


async def test_three_workers_urgent_sends_together_keep_one_process_cap() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)  # the one database
    workers = [budget(time, store) for _ in range(3)]
    sent: list[float] = []
    start = time.now

    async def page(worker: SharedBudget) -> None:
        await worker.urgent_turn()
        sent.append(time.now)

    async def storm() -> None:  # each worker pages 20 clinicians at once
        await asyncio.gather(*(page(w) for w in workers for _ in range(20)))

    await time.run(storm())
    assert len(sent) == 60
    assert sum(t == start for t in sent) == BURST  # the burst goes at once, whoever asks
    assert max_in_window(sent) <= BURST + 25  # in any second: the burst and the rate, for all three
    # Per worker it was 3 x (5 + 25) possible in a second: the 60 would all have gone in 0.6 s.
    assert max(sent) - start == pytest.approx((60 - BURST) * SLOT)
    assert sum(w.stats["urgent_booked"] for w in workers) == 60


async def test_a_database_that_does_not_answer_never_holds_a_crisis_reply_back(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()

    class Hanging(MemoryBudgetStore):
        async def book_urgent(self, interval: float, tolerance: float) -> float:
            await asyncio.Event().wait()  # never answers
            return 0.0

    monkeypatch.setattr(send_budget, "URGENT_ROUND_TRIP", 0.01)  # the real one is 0.25 s of wall time
    shared = budget(time, Hanging(time.monotonic))
    with caplog.at_level(logging.WARNING, logger="bot.telegram.send_budget"):
        await asyncio.wait_for(shared.urgent_turn(), 1.0)  # after the round trip's timeout: at once
        for _ in range(3):  # the next ones do not ask the database at all for a while
            await asyncio.wait_for(shared.urgent_turn(), 0.005)
    assert shared.stats["urgent_offline"] == 1 and shared.fallback._tokens == pytest.approx(BURST - 4)
    assert sum("send budget unavailable" in r.message for r in caplog.records) == 1
    time.now += send_budget.URGENT_OFFLINE_SECONDS + 1
    shared.store = MemoryBudgetStore(time.monotonic)  # the database is back
    await shared.urgent_turn()
    assert shared.stats["urgent_booked"] == 1


async def test_postgres_store_books_urgent_sends_as_a_burst_then_the_rate() -> None:
    engine = make_engine(create_postgres_database())
    store = PostgresBudgetStore(engine)
    interval = 1.0  # one a second with a burst of five (slower than shipped: the statements' own time is no matter)
    try:
        waits = [await store.book_urgent(interval, (BURST - 1) * interval) for _ in range(BURST + 2)]
        assert waits[:BURST] == [0.0] * BURST  # booked
        assert waits[BURST:] == pytest.approx([interval, interval], abs=0.2)  # not booked: the wait for the next
        # The ordinary budget is another row: an urgent storm books nothing there (charges do).
        assert await store.book(1, SLOT) == pytest.approx(0.0, abs=0.05)
    finally:
        await engine.dispose()
