"""Polling that confirms an update to Telegram only once it is committed, and still fetches what
comes meanwhile.

getUpdates confirms every update below its `offset`. aiogram's polling asks for the next batch as
soon as it has handed the last one to its tasks, so a poller killed (SIGKILL, OOM) while those
tasks were still waiting or in their transaction had confirmed updates nobody would ever handle: a
message, an answer, a crisis message's page, gone. Here the offset stays at the oldest update not
yet committed (or skipped as a duplicate, or ended), so a poller that dies leaves those at Telegram
and the next poller (another worker takes the role within seconds) fetches them again: the updates
it had committed are skipped as duplicates (their replies, durable with the commit, are sent by the
outbox), the others are handled.

Holding the offset must not hold back what arrives meanwhile: a crisis message behind a backlog
has to reach the safety gate (which needs no database) at once. So while updates are in progress
the poller asks again every `FRESH_POLL_SECONDS` with the same offset (Telegram answers at once
with the unconfirmed updates and anything newer) and hands on only the updates it has not seen.
Waiting for the whole batch to commit before the next getUpdates held a crisis message at Telegram
for seconds under ~100 updates/s (`python -m bench --only crisis`: reply p50 ~4 s).

An update still not committed `HOLD_SECONDS` after it was fetched (the database is down, a person's
earlier reply waits out a 429) no longer holds the offset, nor do the oldest of more than `WINDOW`
in progress (a backlog: more arrive than the database work keeps up with): getUpdates returns at
most 100, so with a hundred unconfirmed in progress nothing newer could be fetched. Such an update
is still handled; only a kill before its commit would lose it, and the log says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.types import Update

log = logging.getLogger(__name__)

HOLD_SECONDS = 2.0
FRESH_POLL_SECONDS = 0.1  # while updates are in progress: how often to look for newer ones
BATCH_LIMIT = 100  # Telegram's most per getUpdates
# At most this many fetched and unconfirmed: the rest of getUpdates' hundred is room for newer ones.
WINDOW = BATCH_LIMIT // 2
MAX_BACKOFF_SECONDS = 5.0
# The keyword the unit of work calls once the update is committed (bot/telegram/middlewares.py).
SETTLED = "settled"


class CommittedOffsetPoller:
    """Long-polls getUpdates and feeds each update to the dispatcher on a task of its own; the
    offset moves past an update only when it and every earlier one are committed (or were fetched
    HOLD_SECONDS ago). Newer updates are fetched and handled meanwhile."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, timeout: int, allowed_updates: list[str] | None,
                 hold_seconds: float = HOLD_SECONDS, fresh_poll_seconds: float = FRESH_POLL_SECONDS,
                 **data: Any) -> None:
        self.dispatcher, self.bot = dispatcher, bot
        self.timeout, self.allowed_updates, self.hold_seconds = timeout, allowed_updates, hold_seconds
        self.fresh_poll_seconds = fresh_poll_seconds
        self.data = data
        self.tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self.offset: int | None = None
        self.released = 0  # updates let go uncommitted after HOLD_SECONDS
        # Fetched and not yet confirmed, in update_id order: when fetched, and settled once committed.
        self._unconfirmed: dict[int, tuple[float, asyncio.Future[None]]] = {}
        self._newest: int | None = None  # the newest update_id handed on
        self._released_said_at, self._released_unsaid = float("-inf"), 0

    def stop(self) -> None:
        """Fetch nothing more (the updates in progress go on: see `in_progress`)."""
        self._stopping.set()

    @property
    def in_progress(self) -> set[asyncio.Task[Any]]:
        return set(self.tasks)

    async def run(self) -> None:
        """Until `stop()`: fetch, hand each new update to a task, move the offset past what committed."""
        request_timeout = int((self.bot.session.timeout or 30) + self.timeout)
        delay = 0.0
        while not self._stopping.is_set():
            self._advance()
            # Long-poll only when nothing is in progress; otherwise Telegram answers at once anyway
            # (the unconfirmed updates are still there for it).
            method = GetUpdates(offset=self.offset, limit=BATCH_LIMIT, timeout=0 if self._unconfirmed else self.timeout,
                                allowed_updates=self.allowed_updates)
            fetch = asyncio.ensure_future(self.bot(method, request_timeout=request_timeout))
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not fetch.done():
                fetch.cancel()  # stopping: a batch fetched now would not be confirmed anyway
                with contextlib.suppress(BaseException):
                    await fetch
                return
            try:
                updates: list[Update] = fetch.result()
            except Exception as exc:
                delay = min(MAX_BACKOFF_SECONDS, max(0.25, delay * 2))
                log.warning("getUpdates failed (%s); trying again in %.2f s", type(exc).__name__, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            delay = 0.0
            self._hand_on([u for u in updates if self._newest is None or u.update_id > self._newest])
            await self._settle_a_little()

    def _hand_on(self, updates: list[Update]) -> None:
        loop = asyncio.get_running_loop()
        for update in updates:
            future: asyncio.Future[None] = loop.create_future()
            self._unconfirmed[update.update_id] = (loop.time(), future)
            self._newest = update.update_id

            def settle(future: asyncio.Future[None] = future) -> None:
                if not future.done():
                    future.set_result(None)

            task = asyncio.create_task(self._feed(update, settle), name=f"update-{update.update_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _settle_a_little(self) -> None:
        """Before asking again: until everything in progress committed (then a long poll, which
        also confirms them), or `fresh_poll_seconds` (then a look for newer updates)."""
        waiting = [future for _, future in self._unconfirmed.values() if not future.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=self.fresh_poll_seconds)

    def _advance(self) -> None:
        """Move the offset past the committed updates at the head (and those held too long)."""
        now = asyncio.get_running_loop().time()
        released = 0
        while self._unconfirmed:
            update_id, (fetched_at, future) = next(iter(self._unconfirmed.items()))
            if not future.done():
                if now - fetched_at < self.hold_seconds and len(self._unconfirmed) <= WINDOW:
                    break
                released += 1
                future.cancel()
            del self._unconfirmed[update_id]
        if released:
            self.released += released
            self._say_released(released, now)
        if self._unconfirmed:
            self.offset = next(iter(self._unconfirmed))
        elif self._newest is not None:
            self.offset = self._newest + 1

    def _say_released(self, count: int, now: float) -> None:
        """Said at most once a minute (a backlog releases some at every poll)."""
        self._released_unsaid += count
        if now - self._released_said_at < 60.0:
            return
        log.warning("%d update(s) confirmed to Telegram before they were committed (fetched %.0f s ago or more, "
                    "or more than %d in progress: the database may be slow or away), so newer ones can be "
                    "fetched; a kill of this process before they commit would lose them",
                    self._released_unsaid, self.hold_seconds, WINDOW)
        self._released_said_at, self._released_unsaid = now, 0

    async def _feed(self, update: Update, settle: Any) -> None:
        try:
            await self.dispatcher.feed_update(self.bot, update, **{**self.data, SETTLED: settle})
        except Exception:
            log.exception("update %s failed", update.update_id)
        finally:
            settle()
