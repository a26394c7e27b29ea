"""Health end to end: a real `iopbot run` (polling, on SQLite and PostgreSQL) serves GET /healthz
on `[health] listen_port` (127.0.0.1) and answers 200 once its scheduler has ticked; `iopbot
healthz` agrees (exit 0). Killed with SIGKILL, it ticks no more: ten minutes later on the bot's
clock `iopbot healthz` exits 1 with one line naming the stale tick, as Docker's HEALTHCHECK and
monitoring would see it."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.support.e2e import BotProcess

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(port: int, proc: BotProcess, timeout: float = 30.0) -> dict[str, object]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    last: object = None
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                    last = (response.status, await response.json())
                    if response.status == 200:
                        return dict(last[1])  # type: ignore[index]
            except aiohttp.ClientConnectionError as exc:
                last = exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"/healthz never answered 200 (last: {last!r}):\n{proc.log_tail()}")


async def test_a_running_bot_is_healthy_and_a_dead_one_is_not(tmp_path: Path, botapi: FakeBotAPI, db_url: str,
                                                              control: BotAPIControl) -> None:
    port = free_port()
    proc = BotProcess(tmp_path, botapi.base_url or "", db_url,
                      extra_config=f"[health]\nlisten_port = {port}\nmax_tick_age_seconds = 30\n")
    proc.start()
    try:
        await proc.wait_ready(control)
        body = await wait_healthy(port, proc)
        assert body["status"] == "ok" and body["database"] == "ok" and body["problem"] is None
        assert isinstance(body["last_tick_age_seconds"], float) and body["last_tick_age_seconds"] < 30
        done = await asyncio.to_thread(proc.cli, "healthz")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("healthy: database answers, last scheduler tick")

        proc.kill()  # a crash: no clean stop, its worker row stays with its last tick
        proc.move_clock(minutes=10)
        done = await asyncio.to_thread(proc.cli, "healthz")
        assert done.returncode == 1 and done.stdout == ""
        # The bot's test config logs at DEBUG (asyncio's own line); at INFO there is only ours.
        lines = [line for line in done.stderr.splitlines() if line and not re.match(r"\d{4}-\d\d-\d\d ", line)]
        assert len(lines) == 1 and lines[0].startswith("unhealthy: the last scheduler tick was 6"), done.stderr
        assert "(limit 30 s)" in lines[0]
    finally:
        await proc.stop_async()
