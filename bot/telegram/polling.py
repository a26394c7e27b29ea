"""Polling that confirms an update to Telegram only once it is committed.

getUpdates confirms every update below its `offset`. aiogram's polling asks for the next batch as
soon as it has handed the last one to its tasks, so a poller killed (SIGKILL, OOM) while those
tasks were still waiting or in their transaction had confirmed updates nobody would ever handle: a
message, an answer, a crisis message's page, gone. Here the next getUpdates (the one whose offset
confirms a batch) waits until every update of the batch has committed its unit of work (or was
skipped as a duplicate, or ended), so a poller that dies leaves its batch at Telegram and the next
poller (another worker takes the role within seconds) fetches it again: the updates it had
committed are skipped as duplicates (their replies, durable with the commit, are sent by the
outbox), the others are handled.

An update still not committed `HOLD_SECONDS` after its batch was fetched (the database is down, a
person's earlier reply waits out a 429) no longer holds the next batch back: crisis messages in it
must reach the safety gate (which needs no database). It is still handled; only a kill before its
commit would lose it, and the log says so.
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
BATCH_LIMIT = 100  # Telegram's most per getUpdates
MAX_BACKOFF_SECONDS = 5.0
# The keyword the unit of work calls once the update is committed (bot/telegram/middlewares.py).
SETTLED = "settled"


class CommittedOffsetPoller:
    """Long-polls getUpdates and feeds each update to the dispatcher on a task of its own; the
    offset moves past a batch only when all of it is committed (or HOLD_SECONDS have passed)."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, timeout: int, allowed_updates: list[str] | None,
                 hold_seconds: float = HOLD_SECONDS, **data: Any) -> None:
        self.dispatcher, self.bot = dispatcher, bot
        self.timeout, self.allowed_updates, self.hold_seconds = timeout, allowed_updates, hold_seconds
        self.data = data
        self.tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self.offset: int | None = None
        self.released = 0  # updates let go uncommitted after HOLD_SECONDS

    def stop(self) -> None:
        """Fetch nothing more (the updates in progress go on: see `in_progress`)."""
        self._stopping.set()

    @property
    def in_progress(self) -> set[asyncio.Task[Any]]:
        return set(self.tasks)

    async def run(self) -> None:
        """Until `stop()`: fetch a batch, hand each update to a task, wait for the batch's commits."""
        request_timeout = int((self.bot.session.timeout or 30) + self.timeout)
        delay = 0.0
        while not self._stopping.is_set():
            method = GetUpdates(offset=self.offset, limit=BATCH_LIMIT, timeout=self.timeout,
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
            if not updates:
                continue
            await self._handle(updates)
            self.offset = updates[-1].update_id + 1

    async def _handle(self, updates: list[Update]) -> None:
        loop = asyncio.get_running_loop()
        settled: list[asyncio.Future[None]] = []
        for update in updates:
            future: asyncio.Future[None] = loop.create_future()
            settled.append(future)

            def settle(future: asyncio.Future[None] = future) -> None:
                if not future.done():
                    future.set_result(None)

            task = asyncio.create_task(self._feed(update, settle), name=f"update-{update.update_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        _, late = await asyncio.wait(settled, timeout=self.hold_seconds)
        if late:
            self.released += len(late)
            log.warning("%d update(s) not committed %.0f s after they were fetched (the database may be slow "
                        "or away): fetching the next ones; a kill of this process before they commit would lose "
                        "them", len(late), self.hold_seconds)
            for future in late:
                future.cancel()

    async def _feed(self, update: Update, settle: Any) -> None:
        try:
            await self.dispatcher.feed_update(self.bot, update, **{**self.data, SETTLED: settle})
        except Exception:
            log.exception("update %s failed", update.update_id)
        finally:
            settle()
