"""Real databases for tests: a SQLite file, and PostgreSQL from DATABASE_URL or from pgserver.

Each test gets a database of its own (a new file, or a new PostgreSQL database on one shared
server), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import sqlalchemy

_server = None  # the pgserver instance, started once per test session


def postgres_admin_url() -> str:
    """A libpq URL to a PostgreSQL server we may create databases on."""
    global _server
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if _server is None:
        import pgserver

        data_dir = Path(tempfile.mkdtemp(prefix="iopbot-pg-"))
        _server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return _server.get_uri()


def create_postgres_database() -> str:
    """Create an empty database and return its asyncpg URL."""
    admin = postgres_admin_url()
    name = f"iopbot_test_{uuid.uuid4().hex[:12]}"
    _run_admin_sql(admin, f'CREATE DATABASE "{name}"')
    return _with_database(admin, name).replace("postgresql://", "postgresql+asyncpg://", 1)


def _with_database(url: str, name: str) -> str:
    parsed = sqlalchemy.engine.make_url(url)
    return parsed.set(database=name).render_as_string(hide_password=False)


def _run_admin_sql(url: str, sql: str) -> None:
    if _server is not None and not os.environ.get("DATABASE_URL"):
        _server.psql(sql + ";")
        return
    import asyncio
    import threading

    import asyncpg

    async def go() -> None:
        parsed = sqlalchemy.engine.make_url(url)
        conn = await asyncpg.connect(
            user=parsed.username, password=parsed.password, host=parsed.host, port=parsed.port,
            database=parsed.database or "postgres",
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # Called from inside running event loops (async fixtures): use a thread with a loop of its own.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'iopbot.db'}"
