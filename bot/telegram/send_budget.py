"""One send rate for the whole bot: the budget every worker books its sends in (PostgreSQL).

Telegram's limits (about 30 messages a second, about one a second per chat) hold for the bot, not
for a process: two workers each pacing themselves at 25/s sent 58 in one second and got 57 × 429.
So on PostgreSQL the sender books each ordinary send in the database:

* the bot: one row (`send_budget`) holds when the next send may go. A worker books a few slots at
  a time (`BATCH`, one round trip) with one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`:
  next_at = greatest(next_at, now) + count/rate. Slots are spaced exactly 1/rate apart whoever
  holds them, so in any second the server sees at most `messages_per_second` ordinary sends.
* a chat: one row per chat (`chat_send_pace`), booked the same way with the per-chat interval and a
  burst of three, because a participant's messages go out from whichever worker handled the update
  or claimed the row. Rows of chats idle for a minute are pruned.

Times are the database's (`clock_timestamp()`); a worker is told "in 0.12 s", never "at 21:03:04",
so workers on several machines need no agreed clock.

Urgent sends (the crisis reply, a page) wait for no ordinary send: they have a lane of their own,
capped for the whole bot as one process's urgent lane is (`messages_per_second` with a burst of
`burst`: at most 5 + 25 in any second as shipped, however many workers page at once). A worker asks
the `urgent` row for its turn in one short round trip (a cell-rate booking like a chat's, on the
budget's own connections, ahead of every ordinary booking of that worker); if the database does not
answer within `URGENT_ROUND_TRIP` it sends at once on its in-process cap and leaves the database out
of its urgent sends for `URGENT_OFFLINE_SECONDS`. Each urgent send is then counted against the
ordinary budget (`charge_soon`, a background round trip), which moves every worker's next ordinary
slot later. Between the bot's rate (25/s shipped) and Telegram's (about 30/s) is the reserve for
the moment before that charge lands.

If the database does not answer, a worker paces itself alone (its in-process bucket) and says so
in the log once a minute: nothing waits on a budget it cannot reach. The arithmetic is `book`,
shared by the PostgreSQL store and the in-memory one the unit tests drive with an injected clock.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.config import SenderSettings
from bot.telegram.ratelimit import TokenBucket

log = logging.getLogger(__name__)

BATCH = 5  # slots booked per round trip (at 25/s: a round trip every 0.2 s per busy worker)
ADMIT = 12  # ordinary sends of a worker in their transaction at once (8 held one worker to 0.88 of the rate)
LATE = 0.1  # a slot not used within this long of its time is dropped: sent later it would bunch
CHAT_BURST = 3  # sends a chat may get at once before the per-chat interval applies (as Telegram)
PRUNE_EVERY_SECONDS = 60.0
UNAVAILABLE_LOG_EVERY_SECONDS = 60.0
ROUND_TRIP_TIMEOUT = 2.0
BUDGET_NAME = "bot"
URGENT_NAME = "urgent"  # the row of the urgent lane's cap, in the same table
URGENT_ROUND_TRIP = 0.25  # an urgent send waits this long at most for its turn's round trip
URGENT_OFFLINE_SECONDS = 10.0  # after a failed one, urgent sends use the in-process cap this long


def book(next_at: float, now: float, count: int, interval: float, tolerance: float = 0.0) -> tuple[float, list[float]]:
    """Book `count` sends `interval` apart from `next_at` (the first free slot) at `now`.

    Returns the new next_at and when each send may go. A send may go up to `tolerance` ahead of its
    slot (a chat's short burst), never before `now`; over time the rate stays 1/interval. An idle
    budget (next_at in the past) starts at now: unused time is not saved up."""
    start = max(next_at, now)
    return start + count * interval, [max(now, start + i * interval - tolerance) for i in range(count)]


class BudgetStore(Protocol):
    """Where the budget lives. Every answer is "seconds from now", in the store's own clock."""

    async def book(self, count: int, interval: float) -> float:
        """Book `count` slots of the bot's rate; seconds until the first (the rest follow `interval` apart)."""
        ...

    async def book_chat(self, chat_id: int, interval: float, tolerance: float) -> float:
        """Book the chat's next send if it may go now (0.0); else book nothing and say how many
        seconds until it may."""
        ...

    async def charge(self, chat_id: int | None, interval: float, chat_interval: float) -> None:
        """Count a send already made (an urgent one) against the bot's and the chat's budget."""
        ...

    async def book_urgent(self, interval: float, tolerance: float) -> float:
        """Book an urgent send of the bot's urgent cap if it may go now (0.0); else book nothing
        and say how many seconds until it may."""
        ...

    async def prune(self) -> int:
        """Forget chats idle for a minute; how many were forgotten."""
        ...


class MemoryBudgetStore:
    """The budget in memory with an injected clock: the unit tests' store (and the arithmetic's
    reference for the PostgreSQL one)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.next_at = float("-inf")
        self.urgent_next_at = float("-inf")
        self.chats: dict[int, float] = {}
        self.round_trips = 0

    async def book(self, count: int, interval: float) -> float:
        self.round_trips += 1
        now = self.clock()
        self.next_at, times = book(self.next_at, now, count, interval)
        return times[0] - now

    async def book_chat(self, chat_id: int, interval: float, tolerance: float) -> float:
        self.round_trips += 1
        now = self.clock()
        next_at, times = book(self.chats.get(chat_id, float("-inf")), now, 1, interval, tolerance)
        if times[0] > now:
            return times[0] - now
        self.chats[chat_id] = next_at
        return 0.0

    async def book_urgent(self, interval: float, tolerance: float) -> float:
        self.round_trips += 1
        now = self.clock()
        next_at, times = book(self.urgent_next_at, now, 1, interval, tolerance)
        if times[0] > now:
            return times[0] - now
        self.urgent_next_at = next_at
        return 0.0

    async def charge(self, chat_id: int | None, interval: float, chat_interval: float) -> None:
        self.round_trips += 1
        now = self.clock()
        self.next_at, _ = book(self.next_at, now, 1, interval)
        if chat_id is not None:
            self.chats[chat_id], _ = book(self.chats.get(chat_id, float("-inf")), now, 1, chat_interval)

    async def prune(self) -> int:
        now = self.clock()
        idle = [c for c, at in self.chats.items() if at < now - 60]
        for chat_id in idle:
            del self.chats[chat_id]
        return len(idle)


# One statement each, autocommit: `now` is read once (a CTE) so the booking and the answer agree.
_BOOK = """
WITH now AS (SELECT clock_timestamp() AS t),
booked AS (
    INSERT INTO send_budget AS b (name, next_at)
    SELECT $1, t + make_interval(secs => $2::float8) FROM now
    ON CONFLICT (name) DO UPDATE
        SET next_at = greatest(b.next_at, EXCLUDED.next_at - make_interval(secs => $2::float8))
                      + make_interval(secs => $2::float8)
    RETURNING b.next_at
)
SELECT extract(epoch FROM booked.next_at - now.t)::float8 - $2::float8 FROM booked, now
"""


def _cell_rate_booking(table: str, key: str) -> str:
    """Book a slot on the row `key = $1` of `table` only if it may have one now (its next_at, less
    the burst $3, has come; one slot is $2 seconds); the answer is 0, or the seconds to wait.
    `table` and `key` are this module's own names, never input."""
    return f"""
WITH now AS (SELECT clock_timestamp() AS t),
cur AS (SELECT next_at FROM {table} WHERE {key} = $1),
booked AS (
    INSERT INTO {table} AS r ({key}, next_at)
    SELECT $1, t + make_interval(secs => $2::float8) FROM now
    ON CONFLICT ({key}) DO UPDATE
        SET next_at = greatest(r.next_at, EXCLUDED.next_at - make_interval(secs => $2::float8))
                      + make_interval(secs => $2::float8)
        WHERE r.next_at - make_interval(secs => $3::float8) <= EXCLUDED.next_at - make_interval(secs => $2::float8)
    RETURNING 1
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM booked) THEN 0::float8
            ELSE greatest(0.001, extract(epoch FROM (SELECT next_at FROM cur) - (SELECT t FROM now))::float8
                                 - $3::float8) END
"""  # noqa: S608


_BOOK_CHAT = _cell_rate_booking("chat_send_pace", "chat_id")  # one chat's ~1 message a second
_BOOK_URGENT = _cell_rate_booking("send_budget", "name")  # the urgent lane's cap, on the `urgent` row

_CHARGE = """
WITH now AS (SELECT clock_timestamp() AS t),
bot AS (
    INSERT INTO send_budget AS b (name, next_at)
    SELECT $1, t + make_interval(secs => $2::float8) FROM now
    ON CONFLICT (name) DO UPDATE
        SET next_at = greatest(b.next_at, EXCLUDED.next_at - make_interval(secs => $2::float8))
                      + make_interval(secs => $2::float8)
    RETURNING 1
)
SELECT count(*) FROM bot
"""

_CHARGE_WITH_CHAT = """
WITH now AS (SELECT clock_timestamp() AS t),
bot AS (
    INSERT INTO send_budget AS b (name, next_at)
    SELECT $1, t + make_interval(secs => $2::float8) FROM now
    ON CONFLICT (name) DO UPDATE
        SET next_at = greatest(b.next_at, EXCLUDED.next_at - make_interval(secs => $2::float8))
                      + make_interval(secs => $2::float8)
    RETURNING 1
),
chat AS (
    INSERT INTO chat_send_pace AS c (chat_id, next_at)
    SELECT $3, t + make_interval(secs => $4::float8) FROM now
    ON CONFLICT (chat_id) DO UPDATE
        SET next_at = greatest(c.next_at, EXCLUDED.next_at - make_interval(secs => $4::float8))
                      + make_interval(secs => $4::float8)
    RETURNING 1
)
SELECT (SELECT count(*) FROM bot) + (SELECT count(*) FROM chat)
"""

_PRUNE = """
WITH gone AS (DELETE FROM chat_send_pace WHERE next_at < clock_timestamp() - interval '1 minute' RETURNING 1)
SELECT count(*) FROM gone
"""


class PostgresBudgetStore:
    """The budget in PostgreSQL: one autocommit statement per booking on the driver's connection
    (no BEGIN/COMMIT round trips), on a small pool of its own (`for_bot`)."""

    def __init__(self, engine: AsyncEngine, name: str = BUDGET_NAME) -> None:
        self.engine = engine
        self.name = name

    @classmethod
    def for_bot(cls, bot_engine: AsyncEngine) -> PostgresBudgetStore:
        """A store with its own two connections to the bot's database, closed when the bot's
        engine is disposed. Not the bot's pool: a scheduled row books its chat's turn while its
        transaction holds a connection, and with the pool's twenty all held so, a booking would
        wait for one of them, and they for it (measured: 30 s pool timeouts, then 429s)."""
        engine = create_async_engine(bot_engine.url, pool_size=2, max_overflow=2, pool_timeout=ROUND_TRIP_TIMEOUT)

        @event.listens_for(bot_engine.sync_engine, "engine_disposed")
        def _dispose_with_the_bot(_: Any) -> None:
            try:  # inside the bot engine's async dispose (a greenlet): the sync dispose may await
                engine.sync_engine.dispose()
            except Exception:
                log.debug("send budget pool not disposed with the bot's engine", exc_info=True)

        return cls(engine)

    async def _fetch(self, sql: str, *args: Any) -> Any:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg's Connection: caches the prepared statement
            try:
                return await driver.fetchval(sql, *args, timeout=ROUND_TRIP_TIMEOUT)
            except Exception:
                raw.invalidate()  # SQLAlchemy did not see the error: a broken connection must not go back
                raise

    async def book(self, count: int, interval: float) -> float:
        return float(await self._fetch(_BOOK, self.name, count * interval))

    async def book_chat(self, chat_id: int, interval: float, tolerance: float) -> float:
        return float(await self._fetch(_BOOK_CHAT, chat_id, interval, tolerance))

    async def book_urgent(self, interval: float, tolerance: float) -> float:
        return float(await self._fetch(_BOOK_URGENT, URGENT_NAME, interval, tolerance))

    async def charge(self, chat_id: int | None, interval: float, chat_interval: float) -> None:
        if chat_id is None:
            await self._fetch(_CHARGE, self.name, interval)
        else:
            await self._fetch(_CHARGE_WITH_CHAT, self.name, interval, chat_id, chat_interval)

    async def prune(self) -> int:
        return int(await self._fetch(_PRUNE))


class SharedBudget:
    """A worker's side of the shared budget: ordinary sends wait here for a slot of the bot's rate.

    Waiters are served in arrival order; one pump books `BATCH` slots (or as many as are waiting)
    per round trip and hands each out at its time; one more than `LATE` past its time (this worker
    was too busy) is dropped, not used late. `admit` lets at most `ADMIT` of this worker's ordinary
    sends into their transactions at a time (the outbox's turn): they book their slot just before
    sending, so the work between cannot make a slot late, and only a few hold a connection while
    they wait for it."""

    def __init__(self, store: BudgetStore, settings: SenderSettings, *, fallback: TokenBucket,
                 batch: int = BATCH, late: float = LATE, admit: int = ADMIT,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.interval = 1.0 / settings.messages_per_second
        self.chat_interval = settings.per_chat_interval_seconds
        self.chat_tolerance = (CHAT_BURST - 1) * settings.per_chat_interval_seconds
        self.fallback = fallback  # the sender's in-process bucket: used while the database is away
        self.batch = max(1, batch)
        self.late = late
        self._monotonic = monotonic
        self._sleep = sleep
        self._slots: list[float] = []  # booked, not handed out yet (monotonic times, ascending)
        self._waiters: deque[asyncio.Future[float | None]] = deque()
        self._admission = asyncio.Semaphore(admit)
        self._pump: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._last_prune = monotonic()
        self._unavailable_logged = float("-inf")
        self.stats: Counter[str] = Counter()
        # The urgent lane's cap for the whole bot: as one process's (the rate and its burst).
        self.urgent_tolerance = (settings.burst - 1) * self.interval
        self._urgent_waiters: deque[asyncio.Future[bool]] = deque()  # True: go on the in-process cap
        self._urgent_pump: asyncio.Task[None] | None = None
        self._urgent_offline_until = float("-inf")

    # -- ordinary sends ------------------------------------------------------------------------

    async def turn(self) -> float | None:
        """Wait for a slot of the bot's rate; returns its (monotonic) time, or None when the
        database did not answer and this worker paced itself alone instead."""
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve(), name="send-budget")
        at = await future
        if at is None:
            await self.fallback.acquire()
        return at

    async def admit(self) -> None:
        """Wait for a place among the `ADMIT` ordinary sends of this worker that may be in their
        transaction (no database here); `release` when the slot is booked or nothing is sent."""
        await self._admission.acquire()

    def release(self) -> None:
        self._admission.release()

    async def send_turn(self, chat_id: int | None, before_waiting: Callable[[], None] | None = None) -> None:
        """Wait for one ordinary send's turn: a slot of the bot's rate, then the chat's turn booked
        in that same moment (whichever worker sent the chat's last message). If the chat must wait,
        the slot goes back to the next send of this worker and both are tried again when the chat
        may have it, so the send goes at the time both were booked for. `before_waiting` runs
        before such a wait (the sender lets another send into its transaction meanwhile)."""
        while True:
            at = await self.turn()
            if chat_id is None:
                return
            try:
                wait = await self.store.book_chat(chat_id, self.chat_interval, self.chat_tolerance)
            except Exception as exc:  # the database is away: the in-process chat bucket still applies
                self._unavailable(exc)
                return
            self.stats["chat_round_trips"] += 1
            if wait <= 0:
                return
            self.stats["chat_waits"] += 1
            self._give_back(at)
            if before_waiting is not None:
                before_waiting()
            await self._sleep(wait)

    def _give_back(self, at: float | None) -> None:
        """A slot handed out but not used (its chat must wait): the next waiter may have it, on time."""
        if at is None or self._monotonic() - at > self.late:
            return
        bisect.insort(self._slots, at)
        self.stats["given_back"] += 1
        if self._waiters and (self._pump is None or self._pump.done()):
            self._pump = asyncio.create_task(self._serve(), name="send-budget")

    async def _serve(self) -> None:
        while True:
            while self._waiters and self._waiters[0].done():  # cancelled while waiting
                self._waiters.popleft()
            if not self._waiters:
                return
            if not self._slots:
                count = min(self.batch, sum(not w.done() for w in self._waiters))
                try:
                    wait = await self.store.book(count, self.interval)
                except Exception as exc:
                    self._unavailable(exc)
                    while self._waiters:  # each paces itself on the in-process bucket
                        waiter = self._waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(None)
                    return
                first = self._monotonic() + wait
                self._slots.extend(first + i * self.interval for i in range(count))
                self.stats["round_trips"] += 1
                self.stats["booked"] += count
                self._maybe_prune()
                continue
            at = self._slots[0]
            wait = at - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
                continue
            self._slots.pop(0)
            if -wait > self.late:  # this worker was too busy to use it in time
                self.stats["dropped"] += 1
                continue
            waiter = self._waiters.popleft()
            if waiter.done():
                self._slots.insert(0, at)
                continue
            waiter.set_result(at)

    # -- urgent sends --------------------------------------------------------------------------

    async def urgent_turn(self) -> None:
        """Wait for an urgent send's turn under the bot-wide urgent cap: one short round trip when
        the cap has room (every worker's urgent sends together keep it), a wait when it has not.
        Ahead of every ordinary send (those wait on other rows). The database unreachable or slow
        (over `URGENT_ROUND_TRIP`): at once, on this worker's in-process cap."""
        if self._monotonic() < self._urgent_offline_until:
            await self.fallback.acquire(urgent=True)
            return
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._urgent_waiters.append(future)
        if self._urgent_pump is None or self._urgent_pump.done():
            self._urgent_pump = asyncio.create_task(self._serve_urgent(), name="send-budget-urgent")
        offline = await future
        if offline:
            await self.fallback.acquire(urgent=True)

    async def _serve_urgent(self) -> None:
        """This worker's urgent sends, in order, one booking at a time (each a short round trip)."""
        while self._urgent_waiters:
            if self._urgent_waiters[0].done():  # cancelled while waiting
                self._urgent_waiters.popleft()
                continue
            try:
                wait = await asyncio.wait_for(self.store.book_urgent(self.interval, self.urgent_tolerance),
                                              URGENT_ROUND_TRIP)
            except Exception as exc:  # any failure (a timeout too): the crisis reply must go anyway
                self._unavailable(exc)
                self._urgent_offline_until = self._monotonic() + URGENT_OFFLINE_SECONDS
                self.stats["urgent_offline"] += len(self._urgent_waiters)
                while self._urgent_waiters:
                    waiter = self._urgent_waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(True)
                return
            if wait > 0:
                self.stats["urgent_waits"] += 1
                await self._sleep(wait)
                continue
            self.stats["urgent_booked"] += 1
            waiter = self._urgent_waiters.popleft()
            if not waiter.done():
                waiter.set_result(False)
            # (a waiter cancelled just now leaves its booking unused: one urgent place lost, never one too many)

    def charge_soon(self, chat_id: int | None) -> None:
        """Count an urgent send, already made, against the shared budget (in the background:
        the crisis reply never waits for the database)."""
        self.stats["charged"] += 1
        self._in_background(self.store.charge(chat_id, self.interval, self.chat_interval))

    # -- housekeeping --------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        now = self._monotonic()
        if now - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = now
            self._in_background(self.store.prune())

    def _in_background(self, job: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await job
            except Exception as exc:
                self._unavailable(exc)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for the background round trips (charges, pruning): for tests and shutdown."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _unavailable(self, exc: BaseException) -> None:
        self.stats["unavailable"] += 1
        now = self._monotonic()
        if now - self._unavailable_logged >= UNAVAILABLE_LOG_EVERY_SECONDS:
            self._unavailable_logged = now
            log.warning("send budget unavailable (%s: %s); this worker paces itself alone until it answers",
                        type(exc).__name__, str(exc)[:120])
