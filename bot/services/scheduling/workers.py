"""Worker processes: who is running, which one polls, when each scheduler last ticked.

Several `iopbot run` processes share one PostgreSQL. Every one runs the scheduler (rows are claimed
with FOR UPDATE SKIP LOCKED, so two workers never send one row). In polling mode exactly one of
them polls Telegram: the one holding a session-level PostgreSQL advisory lock on a connection of
its own (`PollerElection`). The others try again every few seconds; when the poller dies its
connection drops, PostgreSQL frees the lock and the next try wins. On SQLite there is one process,
and it polls.

Each process keeps one `worker_processes` row (`WorkerRegistry`): its mode, whether it holds the
poller role, and its last scheduler tick. `last_tick_age` and `workers` are what a health check reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from bot.context import AppContext
from bot.db.models import ScheduledAction
from bot.db.worker_models import WorkerMode, WorkerProcess
from bot.messaging import Messenger
from bot.services.scheduling.outbox import ActionSender, Delivered, Handled, OutboxWorker

log = logging.getLogger(__name__)

# Advisory lock keys (two int4 keys: namespace, key). One namespace per use, so that a participant's
# lock and the poller's lock never meet. The values are arbitrary; they must only never change
# between versions that run side by side.
POLLER_LOCK_NAMESPACE = 0x10B0
POLLER_LOCK_KEY = 1
PARTICIPANT_LOCK_NAMESPACE = 0x10B1

# A worker not seen for this long is shown as gone; after FORGET_AFTER its row is removed.
FORGET_AFTER = timedelta(days=1)


def participant_lock_key(telegram_user_id: int) -> int:
    """The second int4 key of a person's advisory lock. Telegram ids go past 2^31: the id is folded
    into 32 bits (two people sharing a key only wait for each other, which is harmless)."""
    folded = telegram_user_id & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= (1 << 31) else folded


# The same fold in SQL, for a lock taken by participant id (the outbox knows no Telegram id).
_FOLDED_USER_ID = "CAST(((telegram_user_id + 2147483648) % 4294967296) - 2147483648 AS INTEGER)"


async def lock_participant(session: AsyncSession, participant_id: int) -> None:
    """On PostgreSQL, this transaction waits for, then holds until it ends, the participant's
    advisory lock: the one each of their updates takes (bot/telegram/middlewares.py claim_update).
    Nothing on SQLite (one process; its single writer already orders the two)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(text(f"SELECT pg_advisory_xact_lock(:namespace, {_FOLDED_USER_ID}) "  # noqa: S608 - a constant
                               "FROM participants WHERE id = :participant_id AND telegram_user_id IS NOT NULL"),
                          {"namespace": PARTICIPANT_LOCK_NAMESPACE, "participant_id": participant_id})


class ParticipantOrderedOutbox(OutboxWorker):
    """The outbox, with each participant's scheduled message (a check-in's first question, a
    questionnaire, a reminder) sent inside their advisory lock. Without it, on PostgreSQL, a
    participant could tap the question's button between Telegram's 200 and the row's "sent"
    commit, and the worker handling the tap (this one or another) would not yet see the check-in
    it opened: the answer would be ignored. With it, the tap waits for that commit. Pages and
    the other urgent rows are left out: they never wait for a participant's update in progress."""

    def register(self, kind: str, sender: ActionSender, *, never_expire: bool = False, urgent: bool = False) -> None:
        super().register(kind, sender if urgent else _in_participant_order(sender),
                         never_expire=never_expire, urgent=urgent)


def _in_participant_order(sender: ActionSender) -> ActionSender:
    async def send(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                   row: ScheduledAction) -> Delivered | Handled | None:
        if row.participant_id is not None:
            await lock_participant(session, row.participant_id)
        return await sender(ctx, messenger, session, row)

    return send


def new_worker_id() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as a health check shows it."""

    id: str
    host: str
    pid: int
    mode: str
    polling: bool
    started_at: datetime
    seen_age: timedelta  # since its last sign of life
    last_tick_age: timedelta | None  # None: its scheduler has not ticked yet


async def last_tick_age(session: AsyncSession, now: datetime, *, worker_id: str | None = None) -> timedelta | None:
    """How long ago any worker's scheduler (or the one named) last ticked; None if none ever did.
    A bot whose newest tick is older than a few tick intervals sends nothing that is due."""
    query = select(func.max(WorkerProcess.last_tick_at))
    if worker_id is not None:
        query = query.where(WorkerProcess.id == worker_id)
    newest = await session.scalar(query)
    return None if newest is None else max(now - newest, timedelta(0))


async def workers(session: AsyncSession, now: datetime) -> list[WorkerStatus]:
    """Every worker that has been seen in the last day, the most recently seen first."""
    rows = (await session.scalars(
        select(WorkerProcess).where(WorkerProcess.seen_at >= now - FORGET_AFTER)
        .order_by(WorkerProcess.seen_at.desc()))).all()
    return [WorkerStatus(
        id=row.id, host=row.host, pid=row.pid, mode=row.mode, polling=row.polling, started_at=row.started_at,
        seen_age=max(now - row.seen_at, timedelta(0)),
        last_tick_age=None if row.last_tick_at is None else max(now - row.last_tick_at, timedelta(0)),
    ) for row in rows]


class WorkerRegistry:
    """This process's `worker_processes` row: written at start, touched on every scheduler tick,
    removed at a clean stop. Failures are logged and never stop the bot (the row is only a report)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], mode: WorkerMode, *,
                 worker_id: str | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.mode = mode
        self.id = worker_id or new_worker_id()
        self.polling = False

    async def register(self, now: datetime) -> None:
        host, _, rest = self.id.partition(":")
        async with self.sessionmaker() as session:
            await session.execute(delete(WorkerProcess).where(WorkerProcess.seen_at < now - FORGET_AFTER))
            session.add(WorkerProcess(id=self.id, host=host, pid=int(rest.partition(":")[0] or os.getpid()),
                                      mode=self.mode.value, polling=False, started_at=now, seen_at=now))
            await session.commit()
        log.info("worker %s registered (%s mode)", self.id, self.mode.value)

    async def ticked(self, now: datetime) -> None:
        """The scheduler completed a planning pass (a planner registered last with the worker)."""
        await self._touch(now, last_tick_at=now)

    async def set_polling(self, polling: bool, now: datetime) -> None:
        """Record taking or giving up the poller role. Taking it also clears the flag of a poller
        that died without saying so (SIGKILL): holding the lock means nobody else polls."""
        self.polling = polling
        try:
            if polling:
                async with self.sessionmaker() as session:
                    await session.execute(update(WorkerProcess).where(WorkerProcess.id != self.id,
                                                                      WorkerProcess.polling.is_(True))
                                          .values(polling=False))
                    await session.commit()
            await self._touch(now)
        except Exception:  # a report only: the role itself is the advisory lock
            log.warning("could not record the poller role of worker %s", self.id, exc_info=True)

    async def _touch(self, now: datetime, **values: Any) -> None:
        async with self.sessionmaker() as session:
            result = await session.execute(
                update(WorkerProcess).where(WorkerProcess.id == self.id)
                .values(seen_at=now, polling=self.polling, **values))
            if not getattr(result, "rowcount", 1):  # pruned meanwhile (a clock moved a day on): write it again
                host, _, rest = self.id.partition(":")
                session.add(WorkerProcess(id=self.id, host=host, pid=int(rest.partition(":")[0] or 0),
                                          mode=self.mode.value, polling=self.polling, started_at=now,
                                          seen_at=now, last_tick_at=values.get("last_tick_at")))
            await session.commit()

    async def unregister(self) -> None:
        try:
            async with self.sessionmaker() as session:
                await session.execute(delete(WorkerProcess).where(WorkerProcess.id == self.id))
                await session.commit()
        except Exception:
            log.warning("could not remove worker %s from worker_processes", self.id, exc_info=True)


class PollerElection:
    """Exactly one polling process per bot: the holder of a session-level advisory lock on a
    PostgreSQL connection of its own (not from the pool, so the lock dies with the connection and
    never stays behind on a pooled one). On SQLite the only process always wins."""

    def __init__(self, engine: AsyncEngine, *, retry_seconds: float = 3.0, check_seconds: float = 3.0) -> None:
        self.postgres = engine.dialect.name == "postgresql"
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self._engine = create_async_engine(engine.url, poolclass=NullPool) if self.postgres else None
        self._conn: AsyncConnection | None = None
        self.held = False

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this process holds the poller role (True), or `stopping` is set (False)."""
        if not self.postgres:
            self.held = True
            return True
        announced = False
        while not stopping.is_set():
            try:
                if await self._try_lock():
                    self.held = True
                    return True
                if not announced:
                    log.info("another worker polls; this one works the schedule and tries again every %.0f s",
                             self.retry_seconds)
                    announced = True
            except Exception as exc:
                log.warning("poller election: database unavailable (%s); trying again", type(exc).__name__)
                await self._drop_connection()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.retry_seconds)
        return False

    async def _try_lock(self) -> bool:
        assert self._engine is not None
        if self._conn is None:
            self._conn = await self._engine.connect()
        got = await self._conn.scalar(text("SELECT pg_try_advisory_lock(:ns, :key)"),
                                      {"ns": POLLER_LOCK_NAMESPACE, "key": POLLER_LOCK_KEY})
        await self._conn.commit()  # the lock is the session's, not the transaction's
        return bool(got)

    async def wait_lost(self) -> None:
        """Return when this process no longer holds the role: its connection failed (the database
        restarted, the network cut it). Checked every few seconds."""
        if not self.postgres:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                assert self._conn is not None
                await asyncio.wait_for(self._conn.scalar(text("SELECT 1")), timeout=max(self.check_seconds, 5.0))
                await self._conn.commit()
            except Exception as exc:
                log.warning("poller role lost: its database connection failed (%s)", type(exc).__name__)
                self.held = False
                await self._drop_connection()
                return

    async def release(self) -> None:
        """Give the role up now (a clean stop): closing the connection frees the lock."""
        self.held = False
        await self._drop_connection()
        if self._engine is not None:
            await self._engine.dispose()

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
