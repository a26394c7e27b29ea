"""One engine and one session factory per process; migrations applied through Alembic."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # Not `module=_ONE_TRIP_AIOSQLITE` (one trip to aiosqlite's thread per statement): with it the
        # fault-mix test (tests/chaos/test_fault_mix.py, SQLite) lost a reply or sent copies in 3 of 4
        # runs, without it 0 of 3 (2026-12-05). Kept, tested on its own, until that is understood.
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets readers and one writer work at once; foreign keys are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=10)
    _ping_after_idle(engine)
    return engine


# A connection back in use within this many seconds is not pinged before its next use.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it sat idle in the pool (PostgreSQL).

    SQLAlchemy's `pool_pre_ping` pings on every checkout: on asyncpg a transaction opened, `;` and
    a rollback, three round trips before each update's first statement. A connection idle for a
    while is what a database restart, a failover or a proxy's idle timeout leaves dead, and those
    are still pinged (a dead one is replaced before anyone uses it). One back in the pool for less
    than a second was just working; if the server went away since, its next statement fails as a
    disconnect, SQLAlchemy invalidates the whole pool (every connection older than that moment is
    replaced when next taken), and the work is tried again: an update by DatabaseRetryMiddleware,
    a scheduled row by the outbox's lease. That is what happened with the ping too, to statements
    already under way when the server went away."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new (just connected), or just working
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The server went away while it sat idle: so did the others of its age. The pool drops
            # them all and checks out a new connection.
            raise InvalidatePoolError(f"a pooled connection did not answer a ping: {type(exc).__name__}") from exc


# --- SQLite: one trip to aiosqlite's thread per statement ---------------------------------------
#
# aiosqlite runs each connection's calls on a thread of its own, and SQLAlchemy's adapter made four
# trips there for a statement (open a cursor, execute, fetch, close) and one for every commit and
# rollback, the pool's rollback of a connection it takes back included. Each trip is a hand-off to
# the thread and a wake-up of the event loop (~25 µs of CPU, and the two threads' GIL hand-over):
# about twenty per participant's note. Here a statement is one trip (its rows fetched and its
# cursor closed in the thread), and a commit or rollback with no transaction open on the
# connection (sqlite3 opens one only for a write) is none: sqlite3 itself would do nothing then.


def _run_statement(conn: sqlite3.Connection, operation: Any, parameters: Any,
                   many: bool) -> tuple[Any, list[Any], int, int | None]:
    """In aiosqlite's thread: execute, fetch every row, close the cursor."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing left open in the thread to close

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._one_trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._one_trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            description, rows, rowcount, lastrowid = await connection._execute(
                _run_statement, connection._conn, operation, parameters, many)
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = collections.deque(rows)


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneTripCursor  # type: ignore[assignment]  # a subclass of it

    def _open_transaction(self) -> bool:
        """Whether sqlite3 has a transaction open on this connection (read without a trip: the
        thread is idle between statements, and SQLAlchemy runs one at a time per connection)."""
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        raw = driver._connection
        return raw is None or raw.in_transaction  # closed: let aiosqlite say so

    def rollback(self) -> None:
        if self._open_transaction():
            super().rollback()

    def commit(self) -> None:
        if self._open_transaction():
            super().commit()


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


_ONE_TRIP_AIOSQLITE = _OneTripDBAPI(aiosqlite, sqlite3)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema up to date (`iopbot db upgrade`). Safe to run again."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
