"""The one way out: every request to Telegram passes through `SenderMiddleware`.

It keeps the bot below Telegram's limits (a global bucket and a bucket per chat), waits exactly
`retry_after` on 429, retries 5xx and timeouts with bounded backoff, and turns a 403 "blocked"
into a fact the care team sees. A message that finally fails is recorded with its reason:
nothing is lost silently. Urgent sends (crisis replies, clinician alerts) jump every queue.

One process (SQLite) keeps the budget in process: a global bucket and a bucket per chat. Several
workers on PostgreSQL share it: `install_send_budget` makes ordinary sends book their slots in the
database (bot/telegram/send_budget.py), while urgent ones take a turn of the bot-wide urgent cap
(one short round trip, ahead of every ordinary send; the in-process urgent lane if the database
does not answer) and are counted against the shared budget afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import SenderSettings
from bot.telegram.ratelimit import ChatBuckets, TokenBucket
from bot.telegram.send_budget import PostgresBudgetStore, SharedBudget

log = logging.getLogger(__name__)

_urgent: contextvars.ContextVar[bool] = contextvars.ContextVar("iopbot_urgent_send", default=False)


@dataclass
class _Turn:
    """A turn taken before a transaction (SenderMiddleware.turn), for the first send inside it: a
    token of the in-process bucket (`local`), an urgent turn of the shared urgent cap, or
    (`shared`) a place among the few sends of this worker let into a transaction to wait for their
    slot of the shared budget (`admitted` until it is booked)."""

    shared: bool = False
    unused: bool = True
    admitted: bool = False
    local: bool = True


_prepaid: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("iopbot_prepaid_send", default=None)

# Calls that do not post into a chat and are not counted against the message limits.
_UNLIMITED = {
    "getUpdates", "getMe", "setWebhook", "deleteWebhook", "getWebhookInfo", "answerCallbackQuery",
    "setMyCommands", "deleteMyCommands", "getChat", "sendChatAction", "getFile",
}


@contextlib.contextmanager
def urgent_sending() -> Iterator[None]:
    """Within this block, sends go ahead of every queued non-urgent message."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


class DeliveryRecorder(Protocol):
    """What the sender reports; implemented by the delivery service (it writes to the database)."""

    async def blocked(self, chat_id: int) -> None: ...

    async def failed(self, chat_id: int | None, method: str, reason: str) -> None: ...


class _ChatLane:
    """One request at a time to a chat, and none before the retry_after Telegram gave for it: a
    429 stops every send to that chat, not only the one that got it. Kept while anyone uses it."""

    __slots__ = ("__weakref__", "lock", "not_before")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.not_before = 0.0


class SenderMiddleware(BaseRequestMiddleware):
    def __init__(self, settings: SenderSettings, recorder: DeliveryRecorder | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self.global_bucket = TokenBucket(settings.messages_per_second, settings.burst)
        # Telegram: about one message a second per chat, short bursts tolerated.
        self.chat_buckets = ChatBuckets(1.0 / settings.per_chat_interval_seconds, burst=3)
        self.stats: dict[str, int] = {"sent": 0, "retry_after": 0, "server_error": 0, "network": 0,
                                      "blocked": 0, "failed": 0}
        self._lanes: weakref.WeakValueDictionary[Any, _ChatLane] = weakref.WeakValueDictionary()
        self._recording: set[asyncio.Task[None]] = set()  # delivery problems being written down
        # The budget shared by every worker (PostgreSQL), set by install_send_budget; None: this
        # process is the whole bot and the buckets above are the budget.
        self.budget: SharedBudget | None = None

    def _lane(self, chat_id: Any) -> _ChatLane | None:
        if chat_id is None:
            return None
        lane = self._lanes.get(chat_id)
        if lane is None:
            lane = self._lanes[chat_id] = _ChatLane()
        return lane

    @staticmethod
    async def _request(make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType], lane: _ChatLane | None) -> Response[TelegramType]:
        if lane is None:
            return await make_request(bot, method)
        # An urgent send (a crisis reply, a page) never waits for another request to the chat
        # to come back (it could hang until the timeout), only for Telegram's retry_after.
        async with contextlib.nullcontext() if _urgent.get() else lane.lock:
            wait = lane.not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                lane.not_before = time.monotonic() + exc.retry_after
                raise

    @contextlib.asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Wait for a turn of the global rate limit before opening a transaction, and send within
        the block: queueing for the rate limit then holds no database connection (PostgreSQL's pool
        ran dry during a wave, and a crisis message waited seconds for one) and no SQLite write lock.
        With a shared budget an ordinary turn is a place among the few sends of this worker let into
        a transaction (`SharedBudget.admit`); the slot itself is booked just before the send, so the
        work in the transaction cannot make it late. An urgent turn waits for no ordinary send: one
        short round trip to the bot-wide urgent cap (`SharedBudget.urgent_turn`; at once on the
        in-process cap if the database does not answer), counted against the shared budget when sent."""
        budget = self.budget
        if budget is None:
            await self.global_bucket.acquire(urgent=urgent)
            paid = _Turn()
        elif urgent:  # the bot-wide urgent cap (a short round trip; never behind an ordinary send)
            await budget.urgent_turn()
            paid = _Turn(local=False)
        else:
            await budget.admit()
            paid = _Turn(shared=True, admitted=True)
        token = _prepaid.set(paid)
        try:
            yield
        finally:
            _prepaid.reset(token)
            if paid.admitted and budget is not None:
                paid.admitted = False
                budget.release()
            elif paid.unused and paid.local:  # nothing was sent (skipped, handed back): not a turn spent
                self.global_bucket.give_back()

    async def _wait_turn(self, chat_id: Any) -> None:
        urgent = _urgent.get()
        budget = self.budget
        paid = _prepaid.get()
        if paid is not None and not paid.unused:
            paid = None  # one send per turn; a retry or a second message waits again
        if budget is None or urgent or (paid is not None and not paid.shared):
            # In process: the whole budget of a lone process. With a shared budget: the urgent lane
            # (or an urgent turn's send), capped for the whole bot by the urgent row (one short
            # round trip, ahead of every ordinary send) and counted against the ordinary budget
            # once sent; the global bucket is then its fallback while the database is away.
            if chat_id is not None:
                await self.chat_buckets.get(chat_id).acquire(urgent=urgent)
            if paid is not None and not paid.shared:
                paid.unused = False
            elif budget is not None:
                await budget.urgent_turn()
            else:
                await self.global_bucket.acquire(urgent=urgent)
            if budget is not None:
                budget.charge_soon(chat_id if isinstance(chat_id, int) else None)
            return
        held = paid if paid is not None and paid.admitted else None

        def let_go() -> None:  # the next send of this worker may come into its transaction
            if held is not None and held.admitted:
                held.admitted = False
                budget.release()

        # The slot and the chat's turn, booked just before the send (the work in the transaction
        # before it cannot make them late); a chat that must wait lets another send in meanwhile.
        await budget.send_turn(chat_id if isinstance(chat_id, int) else None, let_go)
        if chat_id is not None:
            # After the shared booking (which sees every worker's sends, so this rarely waits): it
            # tells this worker's urgent lane what the chat already got.
            await self.chat_buckets.get(chat_id).acquire()
        if paid is not None:
            paid.unused = False
        let_go()

    def _backoff(self, attempt: int) -> float:
        base = self.settings.backoff_base_seconds * (2 ** (attempt - 1))
        return min(self.settings.backoff_max_seconds, base) * (0.5 + random.random() / 2)  # noqa: S311

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        _keep_response_type(method)
        name = method.__api_method__
        if name in _UNLIMITED:
            return await make_request(bot, method)
        chat_id = getattr(method, "chat_id", None)
        lane = self._lane(chat_id)  # held for the whole call, retry waits included
        attempt = 0
        while True:
            attempt += 1
            await self._wait_turn(chat_id)
            try:
                response = await self._request(make_request, bot, method, lane)
            except TelegramRetryAfter as exc:
                # Telegram says exactly when to come back; never sooner. Not counted as a failure.
                self.stats["retry_after"] += 1
                log.warning("429 on %s chat=%s, waiting %ss", name, chat_id, exc.retry_after)
                if attempt >= self.settings.max_attempts * 4:
                    await self._give_up(chat_id, name, f"rate limited {attempt} times")
                    raise
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramForbiddenError as exc:
                # Blocked, or kicked: permanent. Do not retry; tell the care team.
                self.stats["blocked"] += 1
                log.warning("403 on %s chat=%s: the user blocked the bot or left", name, chat_id)
                if self.recorder is not None and isinstance(chat_id, int):
                    self._record(self.recorder.blocked(chat_id))
                await self._give_up(chat_id, name, f"forbidden: {exc.message[:200]}")
                raise
            except (TelegramServerError, TelegramNetworkError) as exc:
                kind = "server_error" if isinstance(exc, TelegramServerError) else "network"
                self.stats[kind] += 1
                if attempt >= self.settings.max_attempts:
                    await self._give_up(chat_id, name, f"{kind} after {attempt} attempts: {exc.message[:150]}")
                    raise
                delay = self._backoff(attempt)
                log.warning("%s on %s chat=%s (attempt %s), retrying in %.2fs", kind, name, chat_id, attempt, delay)
                await asyncio.sleep(delay)
                continue
            self.stats["sent"] += 1
            return response

    async def _give_up(self, chat_id: Any, method: str, reason: str) -> None:
        self.stats["failed"] += 1
        log.error("delivery failed: %s chat=%s: %s", method, chat_id, reason)
        if self.recorder is not None:
            self._record(self.recorder.failed(chat_id if isinstance(chat_id, int) else None, method, reason))

    def _record(self, coro: Any) -> None:
        """Write a delivery problem down in its own transaction, without holding up the send that
        met it: that send may run inside a transaction holding SQLite's write lock (the outbox
        sending a check-in), which the record would wait for until it timed out, and the
        participant who blocked the bot was never marked nor their clinician told."""
        task = asyncio.create_task(self._safely(coro))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def settled(self) -> None:
        """Wait for the delivery problems being written down (at shutdown; tests)."""
        while self._recording:
            await asyncio.gather(*self._recording)

    @staticmethod
    async def _safely(coro: Any) -> None:
        # Recording must never turn a delivery problem into a crash of the caller.
        try:
            await coro
        except Exception:
            log.exception("could not record a delivery problem")


# aiogram reads every answer as `Response[<the method's result type>]`, a generic pydantic model that
# pydantic caches only weakly: once the garbage collector found it unused it was built again, at
# ~5-10 ms each time (measured: 0.8 ms per update on average under load). Kept here, it is built
# once per result type per process.
_RESPONSE_TYPES: dict[Any, Any] = {}


def _keep_response_type(method: TelegramMethod[Any]) -> None:
    returning = method.__returning__
    if returning not in _RESPONSE_TYPES:
        _RESPONSE_TYPES[returning] = Response[returning]  # type: ignore[valid-type]


def install_send_budget(sender: SenderMiddleware, engine: AsyncEngine) -> SharedBudget | None:
    """Share the send rate with every other worker through the database, when it is PostgreSQL.

    Called once by the composition root after the bot is built, with the bot's engine: the budget
    opens a small pool of its own to the same database, closed when that engine is disposed (no
    other clean-up). On SQLite (one process) it does nothing and
    the sender's in-process buckets stay the whole budget. Returns the budget, or None."""
    if engine.dialect.name != "postgresql":
        return None
    sender.budget = SharedBudget(PostgresBudgetStore.for_bot(engine), sender.settings, fallback=sender.global_bucket)
    return sender.budget
