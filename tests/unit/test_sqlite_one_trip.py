"""SQLite through aiosqlite, one trip to its thread per statement (bot/db/engine.py): results,
row counts, errors and transactions as SQLAlchemy's own adapter gives them, in fewer trips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.db.engine import _ONE_TRIP_AIOSQLITE, make_sessionmaker

metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("body", String, unique=True))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    # The module on its own (make_engine does not use it while the fault-mix loss is open).
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-trip.db'}", module=_ONE_TRIP_AIOSQLITE)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", "?"))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_results_counts_and_errors_as_before(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    async with sessions() as s:
        result = await s.execute(insert(notes), [{"body": "a"}, {"body": "b"}, {"body": "c"}])  # executemany
        assert result.rowcount == 3
        one = await s.execute(insert(notes).values(body="d"))
        assert one.inserted_primary_key == (4,)  # lastrowid
        changed = await s.execute(update(notes).where(notes.c.body.in_(["a", "b"])).values(body=notes.c.body + "!"))
        assert changed.rowcount == 2
        assert (await s.execute(select(notes.c.body).order_by(notes.c.id))).scalars().all() == ["a!", "b!", "c", "d"]
        assert (await s.execute(select(notes).where(notes.c.id == 99))).first() is None
        await s.commit()
    async with sessions() as s:
        with pytest.raises(exc.IntegrityError):
            await s.execute(insert(notes).values(body="c"))
        await s.rollback()
        assert await s.scalar(select(func.count()).select_from(notes)) == 4


async def test_a_rollback_undoes_and_a_commit_keeps(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    async with sessions() as s:
        await s.execute(insert(notes).values(body="kept"))
        await s.commit()
        await s.execute(insert(notes).values(body="undone"))
        await s.rollback()
    async with sessions() as s:  # a session closed with a write in it rolls it back too
        await s.execute(insert(notes).values(body="closed"))
    async with sessions() as s:
        assert (await s.execute(select(notes.c.body))).scalars().all() == ["kept"]


async def test_one_trip_per_statement_and_none_for_an_empty_transaction(engine: AsyncEngine,
                                                                        trips: list[str]) -> None:
    sessions = make_sessionmaker(engine)
    async with sessions() as s:  # a read: no transaction opened in SQLite, so nothing to end
        await s.execute(text("SELECT 1"))
        await s.execute(select(notes))
        await s.commit()
    assert trips == ["_run_statement", "_run_statement"]
    trips.clear()
    async with sessions() as s:  # a write: the statement, then its commit (the pool's reset has nothing to do)
        await s.execute(insert(notes).values(body="x"))
        await s.commit()
    assert trips == ["_run_statement", "commit"]
