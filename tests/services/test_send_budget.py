"""The shared send budget: its arithmetic and its dispenser on an injected clock (no wall time),
and the PostgreSQL store's statements against a real database."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.config import SenderSettings
from bot.db.engine import make_engine
from bot.telegram.ratelimit import TokenBucket
from bot.telegram.send_budget import MemoryBudgetStore, PostgresBudgetStore, SharedBudget, book
from bot.telegram.sender import SenderMiddleware, install_send_budget, urgent_sending
from tests.support.databases import create_postgres_database, create_sqlite_database

SETTINGS = SenderSettings(messages_per_second=25.0, per_chat_interval_seconds=1.05)
SLOT = 1 / 25.0


class FakeTime:
    """A timeline that moves only when every task is waiting on it: `sleep` registers a wake-up,
    `run` advances to the earliest one. Nothing here waits for the wall clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    async def run(self, main: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(main)
        while not task.done():
            for _ in range(20):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            if task.done():
                break
            if not self._sleepers:
                raise AssertionError("deadlock: nothing sleeps and the task is not done")
            at, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not future.done():
                future.set_result(None)
        return task.result()


def budget(time: FakeTime, store: Any, **kw: Any) -> SharedBudget:
    fallback = TokenBucket(25.0, 5, monotonic=time.monotonic)
    return SharedBudget(store, SETTINGS, fallback=fallback, monotonic=time.monotonic, sleep=time.sleep, **kw)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the arithmetic ------------------------------------------------------------------------------


def test_book_starts_now_when_idle_and_spaces_the_slots() -> None:
    next_at, times = book(float("-inf"), 10.0, 3, 0.04)
    assert times == pytest.approx([10.0, 10.04, 10.08]) and next_at == pytest.approx(10.12)
    # Busy: the next booking continues from next_at, not from now.
    next_at, times = book(next_at, 10.01, 2, 0.04)
    assert times == pytest.approx([10.12, 10.16]) and next_at == pytest.approx(10.2)


def test_unused_time_is_not_saved_up() -> None:
    _, times = book(5.0, 100.0, 2, 0.04)
    assert times == pytest.approx([100.0, 100.04])


def test_a_chat_gets_a_burst_of_three_then_one_per_interval() -> None:
    next_at, when = float("-inf"), []
    for _ in range(5):
        next_at, times = book(next_at, 0.0, 1, 1.05, tolerance=2 * 1.05)
        when += times
    assert when == pytest.approx([0.0, 0.0, 0.0, 1.05, 2.10])


# -- the dispenser, one worker and several ---------------------------------------------------------


async def test_waiters_get_slots_one_interval_apart_booked_five_per_round_trip() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)
    shared = budget(time, store)
    start = time.now

    async def wave() -> list[float]:
        return list(await asyncio.gather(*(shared.turn() for _ in range(12))))

    got = await time.run(wave())
    assert [t - start for t in got] == pytest.approx([i * SLOT for i in range(12)])
    assert store.round_trips == 3  # 5 + 5 + 2
    assert shared.stats["booked"] == 12 and shared.stats["dropped"] == 0


async def test_three_workers_together_never_exceed_the_rate_in_any_second() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)  # the one database
    workers = [budget(time, store) for _ in range(3)]
    sent: list[float] = []

    async def send(worker: SharedBudget) -> None:
        at = await worker.turn()
        assert at is not None
        sent.append(time.now)

    async def waves() -> None:
        await asyncio.gather(*(send(w) for w in workers for _ in range(60)))

    await time.run(waves())
    assert len(sent) == 180
    assert max_in_window(sent) <= 25
    gaps = [b - a for a, b in itertools.pairwise(sorted(sent))]
    assert min(gaps) >= SLOT - 1e-9
    # All 180 in 180 slots: the three share the rate without losing any of it.
    assert max(sent) - min(sent) == pytest.approx(179 * SLOT)


async def test_an_urgent_send_counted_afterwards_moves_the_next_ordinary_slot() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)
    shared = budget(time, store, batch=1)
    start = time.now

    async def go() -> list[float | None]:
        first = await shared.turn()
        for _ in range(3):
            shared.charge_soon(42)  # three urgent sends went out just now, in process
        await shared.settle()
        second = await shared.turn()
        return [first, second]

    first, second = await time.run(go())
    assert first == pytest.approx(start)
    assert second == pytest.approx(start + 4 * SLOT)  # after the three urgent ones
    assert store.chats[42] == pytest.approx(start + 3 * 1.05)


async def test_a_late_slot_is_dropped_not_sent_late() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)
    shared = budget(time, store)

    async def go() -> float | None:
        waiting = [asyncio.ensure_future(shared.turn()) for _ in range(3)]
        await waiting[0]  # three slots booked: now, +40 ms, +80 ms
        for other in waiting[1:]:
            other.cancel()  # those two sends went away (a stopping worker)
        await time.sleep(0.5)
        return await shared.turn()  # the two left over are long past: dropped, a new one booked

    later = await time.run(go())
    assert later == pytest.approx(time.now)
    assert shared.stats["dropped"] == 2 and store.round_trips == 2


async def test_a_chat_gets_three_then_one_per_interval_each_send_on_a_slot_of_the_rate() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)
    shared = budget(time, store)
    start = time.now

    async def go() -> list[float]:
        out = []
        for _ in range(5):
            await shared.send_turn(7)
            out.append(time.now - start)
        return out

    assert await time.run(go()) == pytest.approx([0, SLOT, 2 * SLOT, 1.05, 2.10])
    assert shared.stats["given_back"] == 2  # the slots held while chat 7 had to wait went back


class BrokenStore(MemoryBudgetStore):
    async def book(self, count: int, interval: float) -> float:
        raise OSError("connection refused")

    async def book_chat(self, chat_id: int, interval: float, tolerance: float) -> float:
        raise OSError("connection refused")


async def test_without_the_database_a_worker_paces_itself_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    shared = budget(time, BrokenStore(time.monotonic))
    start = time.now

    async def go() -> list[float]:
        out = []
        for _ in range(5):
            await shared.send_turn(1)  # paced by the in-process bucket; its chat bucket applies instead
            out.append(time.now - start)
        return out

    with caplog.at_level(logging.WARNING, logger="bot.telegram.send_budget"):
        sent = await time.run(go())
    assert sent == pytest.approx([0] * 5)
    assert shared.fallback._tokens == pytest.approx(0)  # the bucket's burst of five was spent
    assert sum("send budget unavailable" in r.message for r in caplog.records) == 1


async def test_pruning_forgets_idle_chats() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)
    await store.book_chat(1, 1.05, 2.1)
    time.now += 30
    await store.book_chat(2, 1.05, 2.1)
    time.now += 40
    assert await store.prune() == 1 and set(store.chats) == {2}


async def test_the_outbox_turn_admits_a_few_and_books_each_slot_just_before_its_send() -> None:
    time = FakeTime()
    store = MemoryBudgetStore(time.monotonic)
    sender = SenderMiddleware(SETTINGS)
    shared = sender.budget = budget(time, store, admit=2)
    for _ in range(3):  # chat 7 just got its burst of three from other workers
        await store.book_chat(7, 1.05, 2.1)
    start = time.now
    inside: list[int] = []
    sent: dict[int, float] = {}

    async def row(chat_id: int, work: float) -> None:
        async with sender.turn():  # as the outbox does, before its transaction
            inside.append(chat_id)
            await time.sleep(work)  # the row's own work in its transaction: its slot is not late for it
            await sender._wait_turn(chat_id)
            sent[chat_id] = time.now - start

    async def go() -> None:
        await asyncio.gather(row(7, 0.0), row(8, 0.3), row(9, 0.0), row(10, 0.0))

    await time.run(go())
    assert inside[:2] == [7, 8]  # two let in; 9 only once chat 7 had to wait and let it in
    assert sent[7] == pytest.approx(1.05)  # chat 7's fourth message in a second waits its interval
    assert sent[9] == pytest.approx(0.0) and sent[8] == pytest.approx(0.3)  # slots booked when sending
    assert sent[10] == pytest.approx(SLOT)  # in while 8 still worked: the slot after 9's
    assert shared.stats["dropped"] == 0


# -- wiring and the PostgreSQL statements ----------------------------------------------------------


async def test_on_sqlite_the_in_process_buckets_stay_the_budget(tmp_path: Any) -> None:
    engine = make_engine(create_sqlite_database(tmp_path))
    try:
        sender = SenderMiddleware(SETTINGS)
        assert install_send_budget(sender, engine) is None and sender.budget is None
    finally:
        await engine.dispose()


async def test_postgres_store_books_as_the_arithmetic_says() -> None:
    engine = make_engine(create_postgres_database())
    store = PostgresBudgetStore(engine)
    try:
        # Five slots now, the next five after them (the database's clock: the waits shrink by the
        # little time that passes between statements, hence the tolerance on a loaded machine).
        assert await store.book(5, SLOT) == pytest.approx(0.0, abs=0.05)
        assert await store.book(5, SLOT) == pytest.approx(5 * SLOT, abs=0.15)
        waits = [await store.book_chat(99, 1.05, 2.1) for _ in range(5)]
        assert waits[:3] == [0, 0, 0]  # booked
        assert waits[3:] == pytest.approx([1.05, 1.05], abs=0.15)  # not booked: the wait for the fourth
        await store.charge(99, SLOT, 1.05)  # an urgent send: the bot's and the chat's next slot move
        await store.charge(None, SLOT, 1.05)
        assert await store.book(1, SLOT) == pytest.approx(12 * SLOT, abs=0.25)
        assert await store.book_chat(99, 1.05, 2.1) == pytest.approx(2 * 1.05, abs=0.25)  # 4 booked, 3 may burst
        assert await store.prune() == 0  # chat 99 is not idle
    finally:
        await engine.dispose()


async def test_with_a_shared_budget_urgent_sends_never_wait_for_the_database() -> None:
    engine = make_engine(create_postgres_database())
    try:
        sender = SenderMiddleware(SETTINGS)
        shared = install_send_budget(sender, engine)
        assert shared is not None
        calls: list[str] = []
        original: Callable[..., Any] = shared.store.book

        async def book_slowly(*args: Any) -> float:
            calls.append("book")
            await asyncio.sleep(5)  # a database that hangs: an urgent send must not notice
            result: float = await original(*args)
            return result

        shared.store.book = book_slowly  # type: ignore[method-assign]
        with urgent_sending():
            await asyncio.wait_for(sender._wait_turn(5), 0.2)
        async with sender.turn(urgent=True):
            await asyncio.wait_for(sender._wait_turn(6), 0.2)
        await shared.settle()
        assert calls == [] and shared.stats["charged"] == 2
    finally:
        await engine.dispose()
