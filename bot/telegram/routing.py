"""The routers' filters, evaluated on the event loop.

aiogram runs every filter that is not a coroutine in a worker thread (`asyncio.to_thread`), magic
filters such as `F.text` or `F.chat.type.in_(...)` included. Those only read an attribute of the
update, yet each one cost a thread hop: a hand-off to the thread pool, a wake-up back on the loop,
and the threads' share of the two cores. A participant's note met four to six of them on its way
to the fallback (measured with `python -m bench --only inbound`). `filters_on_the_loop` turns each
magic filter into a coroutine that calls it directly; other filters are left as they are (a plain
function may block, so it keeps its thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject


def _filters(router: Router) -> Iterator[FilterObject]:
    for observer in router.observers.values():
        yield from observer._handler.filters or []  # the router's own filters (router.message.filter)
        for handler in observer.handlers:
            yield from handler.filters or []
    for sub in router.sub_routers:
        yield from _filters(sub)


def _on_the_loop(call: Callable[..., Any]) -> Callable[..., Any]:
    async def resolve(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    return resolve


def filters_on_the_loop(router: Router) -> int:
    """Make every magic filter of `router` and its sub-routers a coroutine (idempotent: a router
    taken into a dispatcher again keeps its converted filters). Returns how many were converted."""
    converted = 0
    for item in _filters(router):
        if item.magic is not None and not item.awaitable:
            # `params` (the keyword arguments aiogram hands over) stay those of the magic filter.
            item.callback = _on_the_loop(item.callback)
            item.awaitable = True
            converted += 1
    return converted
