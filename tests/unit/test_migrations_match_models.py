"""The migrations build exactly the tables the models describe.

A model column without its migration works in tests that create tables from the models, and fails
on the first real upgrade; a migration without its model leaves a table nothing writes. Alembic's
own comparison (what `alembic revision --autogenerate` would write) must find nothing, on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from bot.db.all_models import metadata
from tests.support.databases import create_postgres_database, create_sqlite_database


def _differences(url: str) -> list[object]:
    async def compare() -> list[object]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: list(compare_metadata(MigrationContext.configure(sync), metadata)))
        finally:
            await engine.dispose()
    return asyncio.run(compare())


def test_sqlite_migrations_match_the_models(tmp_path: Path) -> None:
    assert _differences(create_sqlite_database(tmp_path)) == []


def test_postgres_migrations_match_the_models() -> None:
    assert _differences(create_postgres_database()) == []
