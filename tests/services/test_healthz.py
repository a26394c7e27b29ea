"""`iopbot healthz` and GET /healthz on real databases (SQLite and PostgreSQL): healthy, a database
that does not answer, a scheduler that stopped ticking. The command runs as a real process (as
Docker's HEALTHCHECK runs it): exit 0 or 1 and one line; the HTTP check on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import ConfigError, load_settings
from bot.context import AppContext
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.worker_models import WorkerProcess
from bot.services.health import check_health
from bot.telegram.health_http import add_health_route, serve_health, start_health_server

REPO = Path(__file__).resolve().parents[2]


async def record_tick(url: str, worker_id: str, tick_at: datetime | None) -> None:
    """A worker's row as a running `iopbot run` leaves it (bot/services/scheduling/workers.py)."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            session.add(WorkerProcess(id=worker_id, host="test", pid=1, mode="webhook", polling=False,
                                      started_at=tick_at or datetime.now(UTC), seen_at=tick_at or datetime.now(UTC),
                                      last_tick_at=tick_at))
            await session.commit()
    finally:
        await engine.dispose()


async def healthz(tmp_path: Path, url: str, *extra: str, config: str = "") -> tuple[int, list[str], list[str]]:
    """Run `iopbot healthz` in a process of its own; (exit code, stdout lines, stderr lines)."""
    path = tmp_path / "healthz.toml"
    path.write_text(f'[database]\nurl = "{url}"\n{config}')
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "IOPBOT_DATA_KEY", "IOPBOT_CLOCK_FILE")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--config", str(path), "healthz", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode().splitlines()


async def test_healthy_when_the_database_answers_and_a_worker_ticked(db_url: str, tmp_path: Path) -> None:
    await record_tick(db_url, "host:1:aa", datetime.now(UTC) - timedelta(seconds=10))
    code, out, err = await healthz(tmp_path, db_url)
    assert (code, err) == (0, []), err
    assert len(out) == 1 and out[0].startswith("healthy: database answers, last scheduler tick"), out


async def test_a_stale_tick_is_unhealthy_with_one_line(db_url: str, tmp_path: Path) -> None:
    await record_tick(db_url, "host:1:aa", datetime.now(UTC) - timedelta(minutes=10))
    await record_tick(db_url, "host:2:bb", None)  # a worker that never ticked does not hide the stale one
    code, out, err = await healthz(tmp_path, db_url)
    assert (code, out) == (1, []) and len(err) == 1, err
    assert re.match(r"unhealthy: the last scheduler tick was 60\d s ago \(limit 120 s\): the scheduler is stuck",
                    err[0]), err
    # The limit is the operator's: [health] max_tick_age_seconds.
    code, out, err = await healthz(tmp_path, db_url, config="[health]\nmax_tick_age_seconds = 900\n")
    assert code == 0, err


async def test_no_tick_yet_is_unhealthy(db_url: str, tmp_path: Path) -> None:
    code, _, err = await healthz(tmp_path, db_url)
    assert code == 1 and len(err) == 1 and "scheduler has not ticked yet" in err[0], err


async def test_an_unreachable_postgresql_is_one_line_without_the_password(tmp_path: Path) -> None:
    # Port 9 on this machine: nothing listens there, the connection is refused at once.
    code, out, err = await healthz(tmp_path, "postgresql+asyncpg://iopbot:hunter2@127.0.0.1:9/iopbot")
    assert (code, out) == (1, []) and len(err) == 1, err
    assert err[0].startswith("unhealthy: the database did not answer"), err
    assert "hunter2" not in err[0]


async def test_a_missing_sqlite_file_is_reported_and_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "iopbot.db"
    for path in (missing, tmp_path / "iopbot.db"):  # in a folder that is not there, and in one that is
        code, out, err = await healthz(tmp_path, f"sqlite+aiosqlite:///{path}")
        assert (code, out) == (1, []) and err == [f"unhealthy: the database file {path} does not exist"], err
        assert not path.exists()


async def test_json_report(db_url: str, tmp_path: Path) -> None:
    await record_tick(db_url, "host:1:aa", datetime.now(UTC) - timedelta(seconds=5))
    code, out, _ = await healthz(tmp_path, db_url, "--json")
    assert code == 0 and len(out) == 1
    assert '"status": "ok"' in out[0] and '"database": "ok"' in out[0]


# GET /healthz over HTTP, on 127.0.0.1 only.

async def get(port: int, path: str = "/healthz", method: str = "GET") -> tuple[int, dict[str, object] | str]:
    async with aiohttp.ClientSession() as client, client.request(method, f"http://127.0.0.1:{port}{path}") as r:
        if r.content_type == "application/json":
            assert r.headers["Cache-Control"] == "no-store"
            return r.status, await r.json()
        return r.status, await r.text()


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


async def test_http_healthz_answers_200_then_503_when_the_tick_is_stale(ctx: AppContext, db_url: str) -> None:
    now = ctx.clock.now()
    await record_tick(db_url, "host:1:aa", now - timedelta(seconds=3))
    runner = await start_health_server(ctx, "127.0.0.1", 0)
    try:
        port = bound_port(runner)
        status, body = await get(port)
        assert status == 200 and isinstance(body, dict)
        assert body["status"] == "ok" and body["database"] == "ok" and body["last_tick_age_seconds"] == 3.0
        assert body["problem"] is None
        ctx.clock.advance(minutes=5)  # type: ignore[attr-defined]
        status, body = await get(port)
        assert status == 503 and isinstance(body, dict)
        assert body["status"] == "unhealthy" and body["database"] == "ok" and body["last_tick_age_seconds"] == 303.0
        assert "last scheduler tick was 303 s ago" in str(body["problem"])
        # Only GET /healthz: no update is accepted on this port, nothing else is served.
        assert (await get(port, method="POST"))[0] == 405
        assert (await get(port, path="/telegram/webhook", method="POST"))[0] == 404
    finally:
        await runner.cleanup()


async def test_a_workers_own_healthz_judges_its_own_tick(ctx: AppContext, db_url: str) -> None:
    now = ctx.clock.now()
    await record_tick(db_url, "host:1:fresh", now - timedelta(seconds=2))
    await record_tick(db_url, "host:2:stuck", now - timedelta(minutes=30))
    app = web.Application()  # as the webhook server adds it
    add_health_route(app, ctx, worker_id="host:2:stuck")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        status, body = await get(bound_port(runner))
        assert status == 503 and isinstance(body, dict)
        assert "this worker's last scheduler tick was 1800 s ago" in str(body["problem"])
    finally:
        await runner.cleanup()
    runner = await start_health_server(ctx, "127.0.0.1", 0, worker_id="host:1:fresh")
    try:
        assert (await get(bound_port(runner)))[0] == 200
    finally:
        await runner.cleanup()


async def test_http_healthz_when_the_database_does_not_answer(ctx: AppContext, tmp_path: Path) -> None:
    engine = make_engine("postgresql+asyncpg://iopbot:hunter2@127.0.0.1:9/iopbot")
    down = AppContext(settings=ctx.settings, clock=ctx.clock, texts=ctx.texts, sessionmaker=make_sessionmaker(engine))
    runner = await start_health_server(down, "127.0.0.1", 0)
    try:
        status, body = await get(bound_port(runner))
        assert status == 503 and isinstance(body, dict)
        assert body["database"] == "unreachable" and "did not answer" in str(body["problem"])
        assert "hunter2" not in str(body)
    finally:
        await runner.cleanup()
        await engine.dispose()


async def test_a_database_that_hangs_is_unhealthy_within_the_timeout() -> None:
    """A server that accepts the connection and never answers (a stuck PostgreSQL, a dead network
    path): the check gives up after its timeout instead of hanging the probe."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = make_engine(f"postgresql+asyncpg://iopbot:hunter2@127.0.0.1:{port}/iopbot")
    try:
        started = asyncio.get_running_loop().time()
        report = await asyncio.wait_for(check_health(make_sessionmaker(engine), datetime.now(UTC), 120,
                                                     answer_within=0.5), 10)
        assert asyncio.get_running_loop().time() - started < 5
        assert not report.healthy and not report.database_ok
        assert report.summary() == "unhealthy: the database did not answer within 0.5 s"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(engine.dispose(), 10)


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_the_health_port_is_off_by_default(ctx: AppContext) -> None:
    assert ctx.settings.health.listen_port == 0
    await asyncio.wait_for(serve_health(ctx), 1)  # returns at once: nothing to serve


def test_health_settings_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[schedule]\ntick_seconds = 30\n[health]\nmax_tick_age_seconds = 20\n")
    with pytest.raises(ConfigError, match=r"\[health\] max_tick_age_seconds \(20.0\) must be longer than "
                                          r"\[schedule\] tick_seconds \(30.0\)"):
        load_settings(path, env={})
    path.write_text('[telegram]\nmode = "webhook"\nwebhook_url = "https://bot.example.org/telegram/webhook"\n'
                    "webhook_listen_port = 8443\n[health]\nlisten_port = 8443\n")
    with pytest.raises(ConfigError, match=r"\[health\] listen_port \(8443\) is the webhook's port"):
        load_settings(path, env={})
    path.write_text("[health]\nlisten_port = 9102\nmax_tick_age_seconds = 60\n")
    health = load_settings(path, env={}).health
    assert (health.listen_port, health.max_tick_age_seconds, health.listen_host) == (9102, 60.0, "127.0.0.1")
