"""The routers' filters, evaluated on the event loop, and routers a message cannot reach skipped.

aiogram runs every filter that is not a coroutine in a worker thread (`asyncio.to_thread`), magic
filters such as `F.text` or `F.chat.type.in_(...)` included. Those only read an attribute of the
update, yet each one cost a thread hop: a hand-off to the thread pool, a wake-up back on the loop,
and the threads' share of the two cores. A participant's note met four to six of them on its way
to the fallback (measured with `python -m bench --only inbound`). `filters_on_the_loop` turns each
magic filter into a coroutine that calls it directly; other filters are left as they are (a plain
function may block, so it keeps its thread).

aiogram also walks every router in turn for every message, and each visit costs its machinery
(copies of the update's data, middleware wrappers, every handler's filters called one by one): a
participant's note walked nineteen routers and about sixty filters on its way to the fallback.
`skip_routers_that_cannot_take` gives each router a pre-check, compiled once from its filters: a
message that every one of its handlers (and its sub-routers') would refuse by a filter the pre-check
can evaluate exactly (a command filter, a dialog-state filter, a magic filter, who is writing:
`bot/telegram/filters.py`) skips the router. Whatever it cannot evaluate exactly counts as "might
take it", so a router is only skipped when aiogram would have found no handler in it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.state import State, StatesGroup

from bot.telegram.filters import IsEnrolledParticipant, IsParticipant, IsStaff


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


# --- routers a message cannot reach ------------------------------------------------------------

# (message, data) -> True when the filter certainly refuses the message (False: it may take it).
Refuses = Callable[[Any, dict[str, Any]], bool]

# Filters of this project that read only who is writing (`actor`, set by ActorMiddleware before any
# router) and never wait on anything: evaluated exactly by running their coroutine to its end.
_ACTOR_FILTERS = (IsStaff, IsEnrolledParticipant, IsParticipant)


def _command_refuses(prefix: str) -> Refuses:
    def refuses(message: Any, _data: dict[str, Any]) -> bool:
        # aiogram's Command: the text (or caption), its first word, whose first character must be
        # one of the prefixes (Command.extract_command and validate_prefix).
        text = getattr(message, "text", None) or getattr(message, "caption", None)
        if not text:
            return True
        words = text.split(maxsplit=1)
        return not words or words[0][0] not in prefix

    return refuses


def _state_refuses(states: tuple[Any, ...]) -> Refuses | None:
    names: set[str | None] = set()
    for state in states:
        if isinstance(state, str) or state is None:
            names.add(state)
        elif isinstance(state, State):
            names.add(state.state)
        elif inspect.isclass(state) and issubclass(state, StatesGroup):
            names.update(state.__all_states_names__)
        else:
            return None  # a group instance or anything else: not evaluated here
    if "*" in names:
        return None  # any state

    def refuses(_message: Any, data: dict[str, Any]) -> bool:
        return data.get("raw_state") not in names

    return refuses


def _magic_refuses(item: FilterObject) -> Refuses:
    magic = item.magic
    assert magic is not None

    def refuses(message: Any, _data: dict[str, Any]) -> bool:
        try:
            return not magic.resolve(message)
        except Exception:  # whatever aiogram makes of it (it decides)
            return False

    return refuses


def _actor_refuses(item: FilterObject) -> Refuses:
    call = item.callback

    def refuses(message: Any, data: dict[str, Any]) -> bool:
        coroutine = call(message, actor=data.get("actor"))
        try:
            coroutine.send(None)
        except StopIteration as done:
            return not done.value
        coroutine.close()  # it waited on something: not one of ours any more; aiogram decides
        return False

    return refuses


def _refuses(item: FilterObject) -> Refuses | None:
    """A pre-check for one filter, or None when it cannot be evaluated exactly before the router."""
    callback = item.callback
    if item.magic is not None:
        return _magic_refuses(item)
    if isinstance(callback, Command) and type(callback) in (Command, CommandStart):
        return _command_refuses(callback.prefix)
    if isinstance(callback, StateFilter) and type(callback) is StateFilter:
        return _state_refuses(tuple(callback.states))
    if type(callback) in _ACTOR_FILTERS:
        return _actor_refuses(item)
    return None


def _any_refuses(items: list[FilterObject] | None) -> list[Refuses] | None:
    """The pre-checks of a list of filters (any one refusing refuses all), None if there is none."""
    checks = [check for check in (_refuses(item) for item in items or []) if check is not None]
    return checks or None


_MAY_TAKE = "_iopbot_may_take_message"


def _compile(router: Router) -> Callable[[Any, dict[str, Any]], bool]:
    """Whether `router` (with its sub-routers) might take a message: False only when each of its
    handlers has a filter that refuses it, or a filter of the router itself does."""
    observer = router.observers["message"]
    subs = [_compile(sub) for sub in router.sub_routers]
    if len(observer.outer_middleware):
        # A middleware of its own runs before its filters and may change what they see.
        return lambda _message, _data: True
    root = _any_refuses(observer._handler.filters)
    handlers: list[list[Refuses]] = []
    for handler in observer.handlers:
        checks = _any_refuses(handler.filters)
        if checks is None:
            return lambda _message, _data: True  # a handler that takes any message it is offered
        handlers.append(checks)

    def may_take(message: Any, data: dict[str, Any]) -> bool:
        if root is not None and any(check(message, data) for check in root):
            return False
        for checks in handlers:
            if not any(check(message, data) for check in checks):
                return True
        return any(sub(message, data) for sub in subs)

    return may_take


def skip_routers_that_cannot_take(dispatcher: Router) -> int:
    """Give every router under `dispatcher` its message pre-check (again after the dispatcher was
    rebuilt: the pre-check is compiled from the routers' filters now). Returns how many routers
    have one."""
    count = 0
    for router in list(dispatcher.chain_tail)[1:]:
        may_take = _compile(router)
        setattr(router, _MAY_TAKE, may_take)
        if "propagate_event" not in vars(router):
            router.propagate_event = _with_pre_check(router)  # type: ignore[method-assign]
        count += 1
    return count


def _with_pre_check(router: Router) -> Callable[..., Any]:
    propagate = type(router).propagate_event

    async def propagate_event(update_type: str, event: Any, **kwargs: Any) -> Any:
        if update_type == "message" and not getattr(router, _MAY_TAKE)(event, kwargs):
            return UNHANDLED
        return await propagate(router, update_type, event, **kwargs)

    return propagate_event
