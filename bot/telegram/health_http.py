"""GET /healthz over HTTP: the aiohttp side of bot/services/health.py.

In webhook mode the webhook server adds the route (`add_health_route(app, ctx)`); a polling or
schedule-only worker serves it alone on `[health] listen_host:listen_port` (`serve_health(ctx)`,
nothing when the port is 0). Only GET /healthz is served there: no update is ever accepted on it.
The answer is 200 or 503 with a small JSON report (no names, no secrets)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.context import AppContext
from bot.services.health import healthz

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"


def health_handler(ctx: AppContext, worker_id: str | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_request: web.Request) -> web.Response:
        status, body = await healthz(ctx.sessionmaker, ctx.settings, ctx.clock.now(), worker_id=worker_id)
        # Never cached: a proxy must not answer "healthy" for a worker that has since stopped.
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    return handle


def add_health_route(app: web.Application, ctx: AppContext, worker_id: str | None = None) -> None:
    """GET /healthz on an existing aiohttp application (the webhook server's). With `worker_id`
    (this process's `WorkerRegistry.id`) the tick judged is this worker's own."""
    app.router.add_get(HEALTH_PATH, health_handler(ctx, worker_id))


async def start_health_server(ctx: AppContext, host: str, port: int, worker_id: str | None = None) -> web.AppRunner:
    """Serve GET /healthz alone on host:port; the caller cleans the runner up. Port 0 picks a free
    port (tests): the bound port is in `runner.addresses`."""
    app = web.Application()
    add_health_route(app, ctx, worker_id)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve_health(ctx: AppContext, worker_id: str | None = None) -> None:
    """Serve `[health] listen_port` until cancelled (then close it); return at once when it is 0.
    For the runtime: `asyncio.create_task(serve_health(ctx, registry.id))`, cancelled when the bot stops."""
    h = ctx.settings.health
    if not h.listen_port:
        return
    runner = await start_health_server(ctx, h.listen_host, h.listen_port, worker_id)
    log.info("health check listening on %s:%s%s", h.listen_host, h.listen_port, HEALTH_PATH)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
