"""Several `iopbot run` workers of one bot, for the scale-out tests: a BotProcess started with a role
(`--mode webhook|polling|worker`), readiness for a webhook worker (its port answers), and what the
database says about the workers (`worker_processes`)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from bot.sandbox.botapi import BotAPIControl
from tests.support.e2e import BotProcess
from tests.support.forkserver import fork_server

WEBHOOK_SECRET = "scale-out-secret_0123456789"  # noqa: S105 - a test value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerBot(BotProcess):
    """`iopbot run --mode <mode>` on a shared database; in webhook mode it listens on a port of its own."""

    def __init__(self, workdir: Path, api_base: str, db_url: str, mode: str, *, extra_config: str = "",
                 port: int | None = None, public_url: str | None = None) -> None:
        self.mode = mode
        self.port = port or free_port()
        # What `iopbot webhook set` registers: the load balancer's address, the same for every worker.
        webhook = f"""
            [telegram]
            webhook_url = "{public_url or self.url}"
            webhook_listen_port = {self.port}
        """
        super().__init__(workdir, api_base, db_url, extra_config=webhook + extra_config,
                         env={"IOPBOT_WEBHOOK_SECRET": WEBHOOK_SECRET})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram/webhook"

    def start(self) -> None:
        self.write_config()
        self.proc = fork_server().spawn(["--config", str(self.config_path), "run", "--mode", self.mode],
                                        cwd=self.workdir, env=self._env(), stdout=self.log_path)
        self.starts += 1

    async def wait_listening(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """A webhook worker is ready when its port answers (a POST without the secret: 403)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc and self.proc.poll() is not None:
                    raise AssertionError(f"iopbot exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with http.post(self.url, json={}) as response:
                        if response.status == 403:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the webhook worker did not listen within {timeout}s:\n{self.log_tail()}")

    async def wait_running(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Any role: ready when its scheduler has ticked (its worker_processes row says so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"iopbot exited with {self.proc.returncode}:\n{self.log_tail()}")
            if "starting in" in self.log_text() and any(
                    w.pid == self.pid and w.last_tick_age is not None for w in await worker_rows(self.db_url)):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the worker's scheduler did not tick within {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


async def worker_rows(db_url: str) -> list[Any]:
    """`workers()` as a health check sees them (the bot's now is close enough to the wall clock)."""
    from bot.clock import SystemClock
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.services.scheduling.workers import workers

    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await workers(session, SystemClock().now())
    finally:
        await engine.dispose()


async def register_webhook(bot: WorkerBot, control: BotAPIControl, upstreams: list[str]) -> str:
    """`iopbot webhook set` once (no worker does it at start), then the Bot API plays the load
    balancer across `upstreams`. Returns what the command printed."""
    done = await asyncio.to_thread(bot.cli, "webhook", "set")
    assert done.returncode == 0, done.stdout + done.stderr
    await control.spread_webhook(upstreams)
    return done.stdout
