"""Real databases for tests: a SQLite file, and PostgreSQL from DATABASE_URL or from pgserver.

Each test gets a database of its own (a new file, or a new PostgreSQL database on one shared
server), so tests never see each other's rows. Both are copies of a database migrated once per
test process (a template), not migrated again for every test.
"""

from __future__ import annotations

import atexit
import os
import shutil
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
        # Registered before the server's own exit hook, so it runs after it (atexit is last in,
        # first out): whatever the stopping server wrote while pgserver deleted the directory goes too.
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
        # "delete": stopped and its data directory removed at exit. With "stop" every test run
        # left ~0.5 GB in /tmp, and a day of runs filled a developer's disk.
        _server = pgserver.get_server(data_dir, cleanup_mode="delete")
    return _server.get_uri()


_template: str | None = None


def _async_url(admin: str, name: str) -> str:
    return _with_database(admin, name).replace("postgresql://", "postgresql+asyncpg://", 1)


def create_postgres_database(*, migrated: bool = True) -> str:
    """Create a database and return its asyncpg URL: migrated to head (copied from a template
    migrated once per test session), or empty for tests of the migrations themselves."""
    global _template
    from bot.db.engine import upgrade

    admin = postgres_admin_url()
    if migrated and _template is None:
        template = f"iopbot_template_{uuid.uuid4().hex[:8]}"
        _run_admin_sql(admin, f'CREATE DATABASE "{template}"')
        _in_thread(upgrade, _async_url(admin, template))
        _template = template
    name = f"iopbot_test_{uuid.uuid4().hex[:12]}"
    template_clause = f' TEMPLATE "{_template}"' if migrated else ""
    _run_admin_sql(admin, f'CREATE DATABASE "{name}"{template_clause}')
    return _async_url(admin, name)


def _with_database(url: str, name: str) -> str:
    parsed = sqlalchemy.engine.make_url(url)
    return parsed.set(database=name).render_as_string(hide_password=False)


def _run_admin_sql(url: str, sql: str) -> None:
    if _server is not None and not os.environ.get("DATABASE_URL"):
        _server.psql(sql + ";")
        return
    import asyncio

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

    _in_thread(asyncio.run, go())


def _in_thread(func, *args):  # type: ignore[no-untyped-def]
    """Run blocking or asyncio.run-based work from inside a running event loop (async fixtures)."""
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            func(*args)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'iopbot.db'}"


_sqlite_template: Path | None = None


def _sqlite_template_file() -> Path:
    """A SQLite file migrated to head once per test process (Alembic costs a tenth of a second or
    more per database; a copy costs a millisecond)."""
    global _sqlite_template
    if _sqlite_template is None:
        from bot.db.engine import upgrade

        directory = Path(tempfile.mkdtemp(prefix="iopbot-sqlite-template-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)  # leave nothing in /tmp
        _in_thread(upgrade, sqlite_url(directory))
        template = directory / "iopbot.db"
        # Alembic's engine is gone: nothing may be left in a side file (-wal, -journal) to lose in a copy.
        assert not [p for p in directory.iterdir() if p != template], list(directory.iterdir())
        _sqlite_template = template
    return _sqlite_template


def create_sqlite_database(directory: Path) -> str:
    """A SQLite database in `directory`, migrated to head (a copy of a template migrated once per test
    process, as PostgreSQL databases are), and its URL. Tests of the migrations themselves migrate
    an empty file with `sqlite_url` instead."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    url = sqlite_url(directory)
    shutil.copyfile(_sqlite_template_file(), directory / "iopbot.db")
    return url
