"""Shared fixtures: real databases (SQLite and PostgreSQL), settings, an in-process app context."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.config import Settings, load_settings
from bot.content.i18n import Texts
from bot.context import AppContext
from bot.db.engine import make_engine, make_sessionmaker
from tests.support.databases import create_postgres_database, create_sqlite_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(db_kind: str, tmp_path: Path) -> str:
    if db_kind == "postgres":
        return create_postgres_database()  # already migrated (from a template)
    return create_sqlite_database(tmp_path)  # migrated (copied from a template)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    loaded = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "42:TEST"})
    # Replies are read in order: wait for the semantic layer however loaded the machine is (its
    # late answer has its own test, tests/flows/test_semantic_gate.py).
    return dataclasses.replace(loaded, semantic=dataclasses.replace(loaded.semantic, wait_ms=5000.0))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))


@pytest.fixture
async def ctx(settings: Settings, db_url: str, clock: ManualClock) -> AsyncIterator[AppContext]:
    engine = make_engine(db_url)
    context = AppContext(
        settings=settings.replace(database=settings.database.__class__(url=db_url)),
        clock=clock,
        texts=Texts.load(REPO / "content"),
        sessionmaker=make_sessionmaker(engine),
    )
    yield context
    await engine.dispose()
