"""PostgreSQL connections are pinged before use only after sitting idle (bot/db/engine.py): a
connection the server dropped while it was idle is replaced before anyone uses it; one dropped
while busy fails its next statement as a disconnect (worth retrying: DatabaseRetryMiddleware and
the outbox do), and the retry gets a new connection."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import engine as engine_module
from bot.db.engine import make_engine
from bot.services.scheduling.outbox import database_unavailable
from tests.support.databases import create_postgres_database


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _drop(url: str, pid: int) -> None:
    other = make_engine(url)
    try:
        async with other.connect() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()
    finally:
        await other.dispose()


async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(monkeypatch: pytest.MonkeyPatch) -> None:
    url = create_postgres_database(migrated=False)
    engine = make_engine(url)
    try:
        first = await _backend_pid(engine)
        await _drop(url, first)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle "long enough"
        assert await _backend_pid(engine) != first  # no error: pinged, found dead, replaced
    finally:
        await engine.dispose()


async def test_a_connection_dropped_while_just_used_fails_once_and_the_retry_reconnects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = create_postgres_database(migrated=False)
    engine = make_engine(url)
    try:
        first = await _backend_pid(engine)
        await _drop(url, first)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)  # just used: no ping
        with pytest.raises(exc.DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated and database_unavailable(failed.value)
        assert await _backend_pid(engine) != first  # the retry
    finally:
        await engine.dispose()
