"""The README's backup and restore commands, run: PostgreSQL with `pg_dump -Fc` and `pg_restore`,
SQLite with `sqlite3 iopbot.db ".backup ..."` (an online backup, safe while the bot runs). The
restored database has the same rows and schema version and is healthy; with the data key it opens,
without it every command refuses (the key is backed up apart from the database, or the encrypted
text is lost)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from bot.db.engine import make_engine, make_sessionmaker
from bot.db.worker_models import WorkerProcess
from tests.support.databases import create_postgres_database, create_sqlite_database

KEY = "backup-test-passphrase-not-a-real-one"


def iopbot(tmp_path: Path, url: str, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    config = tmp_path / f"config-{abs(hash(url))}.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[telegram]\nbot_username = "test_bot"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "IOPBOT_DATA_KEY", "IOPBOT_CLOCK_FILE")}
    if key:
        env["IOPBOT_DATA_KEY"] = key
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(config), *args],  # noqa: S603
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


async def fill(url: str, tmp_path: Path) -> None:
    """A staff invite (the data key's fingerprint is recorded with it) and a scheduler tick."""
    done = await asyncio.to_thread(iopbot, tmp_path, url, "invite", "staff", "--alias", "dr-a", "--role", "therapist")
    assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            now = datetime.now(UTC)
            session.add(WorkerProcess(id="host:1:aa", host="host", pid=1, mode="polling", polling=True,
                                      started_at=now, seen_at=now, last_tick_at=now))
            await session.commit()
    finally:
        await engine.dispose()


async def snapshot(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(sqlalchemy.text("SELECT version_num FROM alembic_version"))
            staff = await conn.scalar(sqlalchemy.text("SELECT count(*) FROM staff"))
            invites = await conn.scalar(sqlalchemy.text("SELECT count(*) FROM invites"))
            state = (await conn.execute(sqlalchemy.text("SELECT * FROM program_state"))).all()
        return {"version": version, "staff": staff, "invites": invites, "program_state": sorted(map(tuple, state))}
    finally:
        await engine.dispose()


async def check_restored(tmp_path: Path, original: str, restored: str) -> None:
    assert await snapshot(restored) == await snapshot(original)
    healthz = await asyncio.to_thread(iopbot, tmp_path, restored, "healthz")
    assert healthz.returncode == 0, healthz.stderr
    with_key = await asyncio.to_thread(iopbot, tmp_path, restored, "keys", "status")
    assert with_key.returncode == 0, with_key.stderr
    without_key = await asyncio.to_thread(iopbot, tmp_path, restored, "invite", "staff", "--alias", "dr-b",
                                          "--role", "therapist", key=None)
    assert without_key.returncode != 0 and "IOPBOT_DATA_KEY" in without_key.stderr, without_key.stderr


async def test_sqlite_online_backup_and_restore(tmp_path: Path) -> None:
    url = create_sqlite_database(tmp_path / "live")
    await fill(url, tmp_path)
    live, backup = tmp_path / "live" / "iopbot.db", tmp_path / "iopbot-backup.db"
    engine = make_engine(url)  # the bot is "running": a connection is open, in WAL mode
    try:
        async with engine.connect() as conn:
            await conn.execute(sqlalchemy.text("SELECT 1"))
            cli = shutil.which("sqlite3")
            if cli:
                done = await asyncio.to_thread(run, cli, str(live), f".backup '{backup}'")
                assert done.returncode == 0, done.stderr
            else:  # the same online backup from Python's standard library
                with sqlite3.connect(live) as source, sqlite3.connect(backup) as target:
                    source.backup(target)
    finally:
        await engine.dispose()
    with sqlite3.connect(backup) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Restore: the bot stopped, the file put back (with no -wal or -shm beside it).
    (tmp_path / "restored").mkdir()
    shutil.copyfile(backup, tmp_path / "restored" / "iopbot.db")
    await check_restored(tmp_path, url, f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'iopbot.db'}")


def postgres_tool(name: str) -> str:
    """pg_dump or pg_restore of the server's own version (pgserver's), else the one on PATH."""
    if not os.environ.get("DATABASE_URL"):
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
        if bundled.exists():
            return str(bundled)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed here: the PostgreSQL backup commands were not run")
    return found


def libpq_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_postgresql_pg_dump_and_pg_restore(tmp_path: Path) -> None:
    url = create_postgres_database()
    await fill(url, tmp_path)
    dump = tmp_path / "iopbot.dump"
    done = await asyncio.to_thread(run, postgres_tool("pg_dump"), "-Fc", "--no-owner", "--file", str(dump),
                                   f"--dbname={libpq_url(url)}")
    assert done.returncode == 0, done.stderr
    restored = create_postgres_database(migrated=False)  # an empty database, as on a new server
    done = await asyncio.to_thread(run, postgres_tool("pg_restore"), "--no-owner", "--exit-on-error",
                                   f"--dbname={libpq_url(restored)}", str(dump))
    assert done.returncode == 0, done.stderr
    await check_restored(tmp_path, url, restored)
