"""The local Bot API as the load balancer in front of several webhook workers: round robin per
delivery attempt, the secret header on every request, a 5xx or a worker that is down retried on
another one, and each chat's updates still delivered in order."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.sandbox.botapi import SECRET_HEADER, BotAPIControl, FakeBotAPI, WebhookRetry


class Worker:
    """A webhook worker stand-in: records what it got, answers 500 for the first `failures`."""

    def __init__(self, failures: int = 0) -> None:
        self.got: list[dict[str, Any]] = []
        self.secrets: set[str | None] = set()
        self.failures = failures
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.secrets.add(request.headers.get(SECRET_HEADER))
            if self.failures > 0:
                self.failures -= 1
                return web.Response(status=500)
            self.got.append(await request.json())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"  # nothing listens there once closed


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI(webhook_retry=WebhookRetry(first_delay=0.01, max_delay=0.05))
    await server.start()
    yield server
    await server.stop()


async def _set_webhook(api: FakeBotAPI) -> None:
    async with BotAPIControl(api.base_url or "") as control:
        assert control
    from aiohttp import ClientSession

    async with ClientSession() as http, http.post(
            f"{api.base_url}/bot{api.token}/setWebhook",
            json={"url": "https://lb.example.org/hook", "secret_token": "lb-secret"}) as response:
        assert (await response.json())["ok"]


async def test_round_robin_with_the_secret_and_each_chats_order(api: FakeBotAPI) -> None:
    workers = [Worker(), Worker(), Worker()]
    for w in workers:
        await w.start()
    try:
        async with BotAPIControl(api.base_url or "") as control:
            assert (await control.spread_webhook([w.url for w in workers]))["upstreams"] == [w.url for w in workers]
        await _set_webhook(api)
        sent = [api.inject_message(1000 + n % 3, f"m{n}")["update_id"] for n in range(30)]
        for _ in range(200):
            if sum(len(w.got) for w in workers) == 30:
                break
            await _pause()
        assert sorted(len(w.got) for w in workers) == [10, 10, 10]
        assert all(w.secrets == {"lb-secret"} for w in workers)
        got = sorted((u for w in workers for u in w.got), key=lambda u: u["update_id"])
        assert [u["update_id"] for u in got] == sent
        for chat in (1000, 1001, 1002):  # one chat's updates went to several workers, in order
            seen = [(u["update_id"], i) for i, w in enumerate(workers) for u in w.got
                    if u["message"]["chat"]["id"] == chat]
            assert len({i for _, i in seen}) >= 2
        deliveries = api.webhook()["deliveries"]
        assert all(d["chat_id"] in (1000, 1001, 1002) and d["url"] for d in deliveries)
        assert api.stats()["webhook"]["by_upstream"] == {w.url: 10 for w in workers}
    finally:
        for w in workers:
            await w.stop()


async def test_a_failed_attempt_goes_to_another_worker_and_nothing_is_dropped(api: FakeBotAPI) -> None:
    flaky, healthy = Worker(failures=3), Worker()
    for w in (flaky, healthy):
        await w.start()
    try:
        api._webhook.spread([flaky.url, _closed_port_url(), healthy.url])
        await _set_webhook(api)
        for n in range(12):
            api.inject_message(2000 + n, f"m{n}")
        for _ in range(300):
            if len(flaky.got) + len(healthy.got) == 12:
                break
            await _pause()
        stats = api.stats()["webhook"]
        assert len(flaky.got) + len(healthy.got) == 12 and stats["dropped"] == 0
        assert stats["failed_attempts"] >= 4  # three 500s and at least one refused connection
        errors = {d["error"].split(":")[0] for d in api.webhook()["deliveries"] if d["error"]}
        assert errors == {"Wrong response from the webhook", "Connection failed"}
        info = api._webhook.info()
        assert info["pending_update_count"] == 0 and "last_error_message" in info
    finally:
        for w in (flaky, healthy):
            await w.stop()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.02)
