"""Webhook delivery: each update POSTed to the bot's webhook with the secret header, retried while
the webhook does not answer 2xx, in order within a chat; a Bot API call the webhook puts in its
answer (as aiogram can) is run like Telegram runs it.

With upstreams (`spread`), the server also plays the load balancer in front of several webhook
workers: round robin, each attempt of a chat to the worker after the one its last attempt went to,
so one person's consecutive updates land on different workers and a retry after a failed attempt
goes to another one; an upstream that could not be reached is skipped for a moment (like nginx's
max_fails/fail_timeout)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from aiohttp import BodyPartReader, ClientError, ClientResponse, ClientSession, ClientTimeout, MultipartReader
from aiohttp.hdrs import CONTENT_TYPE

from bot.sandbox.botapi.errors import bad_request
from bot.sandbox.botapi.params import Params, Upload
from bot.sandbox.botapi.updates import Pending, UpdateQueue

log = logging.getLogger(__name__)

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


@dataclass(frozen=True)
class WebhookRetry:
    """How the server retries a webhook that did not answer 2xx: doubling delays, bounded."""

    first_delay: float = 0.05
    max_delay: float = 1.0
    max_attempts: int = 10
    request_timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.first_delay * 2 ** (attempt - 1)))


@dataclass
class DeliveryRecord:
    """One attempt to POST an update to the webhook."""

    update_id: int
    attempt: int
    at: float
    status: int | None
    error: str | None
    url: str | None = None  # where it went (an upstream, when spread across workers)
    chat_id: int | None = None  # whose update it was (the chat, or the user without a chat)


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Lane:
    """Updates of one chat, delivered to the webhook one after another so their order is kept."""

    queue: deque[Pending] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


async def _webhook_reply(response: ClientResponse) -> tuple[str, Params] | None:
    """The Bot API call a webhook may put in its answer (aiogram sends it as a multipart form)."""
    values: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    try:
        if response.content_type == "application/json":
            body = await response.json()
            values = body if isinstance(body, dict) else {}
        elif response.content_type == "multipart/form-data":
            async for part in MultipartReader.from_response(response):
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    data = await part.read()
                    uploads[part.name] = Upload(part.filename, part.headers.get(CONTENT_TYPE), bytes(data))
                    values[part.name] = f"attach://{part.name}"
                else:
                    values[part.name] = await part.text()
        else:
            await response.read()
    except ValueError as exc:  # the update was delivered all the same; only the reply is unreadable
        log.warning("webhook: unreadable answer body (%s)", type(exc).__name__)
        return None
    method = values.pop("method", None)
    return (str(method), Params(values, uploads)) if method else None


def _lane_key(update: Mapping[str, Any]) -> Hashable:
    """The chat an update belongs to, so webhook delivery keeps each chat's order."""
    for name, body in update.items():
        if name == "update_id" or not isinstance(body, dict):
            continue
        message = body.get("message")
        chat = body.get("chat") or (message.get("chat") if isinstance(message, dict) else None)
        if isinstance(chat, dict) and "id" in chat:
            return ("chat", chat["id"])
        sender = body.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return ("user", sender["id"])
    return ("update", update.get("update_id"))


class WebhookDelivery:
    """The webhook the bot set (if any) and the delivery of pending updates to it, one lane per chat.
    `run_reply` runs a Bot API call the webhook answered with; `deliveries` logs every attempt."""

    def __init__(
        self,
        updates: UpdateQueue,
        retry: WebhookRetry,
        *,
        monotonic: Callable[[], float],
        now: Callable[[], int],
        run_reply: Callable[[str, Params], Awaitable[object]],
        log_size: int,
    ) -> None:
        self.config: Webhook | None = None
        self._updates = updates
        self._retry = retry
        self._monotonic = monotonic
        self._now = now
        self._run_reply = run_reply
        self._log_size = log_size
        self._slots = asyncio.Semaphore(40)
        self._lanes: dict[Hashable, _Lane] = {}
        self._http: ClientSession | None = None
        self.upstreams: list[str] = []  # empty: deliver to the webhook's own URL
        self._turn = 0
        self._lane_turns: dict[Hashable, int] = {}
        self._down_until: dict[str, float] = {}
        self.clear()

    def clear(self) -> None:
        """Forget the delivery log and counters (not the webhook itself)."""
        self.deliveries: deque[DeliveryRecord] = deque(maxlen=self._log_size)
        self.delivered = 0
        self.failed_attempts = 0
        self.dropped = 0
        self.by_upstream: Counter[str] = Counter()  # deliveries answered 2xx, by upstream

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ---- setWebhook, deleteWebhook, getWebhookInfo -----------------------------------------

    async def set(self, params: Params) -> bool:
        url = params.text("url") or ""
        if not url:  # setWebhook with an empty url removes the webhook
            return await self.delete(params)
        if not re.match(r"(?i)https?://", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = min(max(params.integer("max_connections") or 40, 1), 100)
        self._updates.set_allowed_updates(params)
        await self.stop_lanes()
        if params.flag("drop_pending_updates"):
            self._updates.pending.clear()
        self.config = Webhook(url=url, secret_token=secret, max_connections=max_connections)
        self._slots = asyncio.Semaphore(max_connections)
        for entry in self._updates.pending.values():
            self._enqueue(entry)
        self._updates.pulse.fire()  # a waiting long poll now ends with 409
        return True

    async def delete(self, params: Params) -> bool:
        await self.stop_lanes()
        self.config = None
        if params.flag("drop_pending_updates"):
            self._updates.pending.clear()
        return True

    def info(self) -> dict[str, Any]:
        """getWebhookInfo's answer."""
        webhook, allowed = self.config, self._updates.allowed_updates
        info: dict[str, Any] = {
            "url": webhook.url if webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates.pending),
        }
        if allowed is not None:
            info["allowed_updates"] = sorted(allowed)
        if webhook is not None:
            info["max_connections"] = webhook.max_connections
            if webhook.last_error_date is not None:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
        return info

    def view(self) -> dict[str, Any]:
        """What the control API shows: the webhook, allowed_updates, every delivery attempt."""
        webhook, allowed = self.config, self._updates.allowed_updates
        return {
            "url": webhook.url if webhook else None,
            "secret_token_set": bool(webhook and webhook.secret_token),
            "allowed_updates": sorted(allowed) if allowed is not None else None,
            "pending_updates": len(self._updates.pending),
            "upstreams": list(self.upstreams),
            "deliveries": [asdict(d) for d in self.deliveries],
        }

    def stats(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "failed_attempts": self.failed_attempts, "dropped": self.dropped,
                "by_upstream": dict(self.by_upstream)}

    # ---- the load balancer ------------------------------------------------------------------

    UPSTREAM_DOWN_SECONDS: Final = 1.0  # an upstream that could not be reached is skipped this long

    def spread(self, urls: list[str]) -> None:
        """Deliver to these URLs round robin instead of the webhook's own URL, as a load balancer
        in front of several webhook workers would (an empty list: back to the webhook's URL)."""
        if not all(isinstance(u, str) and re.match(r"(?i)https?://", u) for u in urls):
            raise ValueError("upstreams must be http(s) URLs")
        self.upstreams = list(urls)
        self._lane_turns.clear()
        self._down_until.clear()

    def _target(self, webhook: Webhook, lane: Hashable) -> str:
        """The next upstream for this chat: chats start round robin, and each chat's next attempt
        goes to the next worker after its last one, so one person's consecutive updates always
        land on different workers (a global turn could keep a chat on one worker by accident)."""
        if not self.upstreams:
            return webhook.url
        now, count = self._monotonic(), len(self.upstreams)
        if lane not in self._lane_turns:
            self._lane_turns[lane] = self._turn
            self._turn += 1
        for _ in range(count):
            url = self.upstreams[self._lane_turns[lane] % count]
            self._lane_turns[lane] += 1
            if self._down_until.get(url, 0.0) <= now:
                return url
        return self.upstreams[self._lane_turns[lane] % count]  # all down: try one anyway

    # ---- delivery ---------------------------------------------------------------------------

    def offer(self, entry: Pending) -> None:
        """A new pending update: delivered if a webhook is set (getUpdates hands it out otherwise)."""
        if self.config is not None:
            self._enqueue(entry)

    def _enqueue(self, entry: Pending) -> None:
        key = _lane_key(entry.update)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.task = asyncio.get_running_loop().create_task(self._run_lane(key, lane))
        lane.queue.append(entry)

    async def stop_lanes(self) -> None:
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        self._lanes = {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_lane(self, key: Hashable, lane: _Lane) -> None:
        updates = self._updates
        try:
            while lane.queue:
                entry = lane.queue[0]
                # Not dropped or reset meanwhile, and of a kind the bot asked for.
                if entry.seq in updates.pending and updates.wanted(entry.update):
                    await self._deliver(entry)
                    updates.pending.pop(entry.seq, None)
                lane.queue.popleft()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, entry: Pending) -> None:
        webhook, retry = self.config, self._retry
        assert webhook is not None  # lanes are stopped before the webhook is removed
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers[SECRET_HEADER] = webhook.secret_token
        body = json.dumps(entry.update)
        lane = _lane_key(entry.update)
        chat_id = lane[1] if isinstance(lane, tuple) and lane[0] in ("chat", "user") else None
        if self._http is None:
            self._http = ClientSession()
        for attempt in range(1, retry.max_attempts + 1):
            status: int | None = None
            url = self._target(webhook, lane)
            try:
                async with (
                    self._slots,
                    self._http.post(
                        url,
                        data=body,
                        headers=headers,
                        timeout=ClientTimeout(total=retry.request_timeout),
                    ) as response,
                ):
                    status = response.status
                    reply = await _webhook_reply(response) if 200 <= status < 300 else None
                    error = (
                        None
                        if 200 <= status < 300
                        else f"Wrong response from the webhook: {status} {response.reason}"
                    )
            except (ClientError, TimeoutError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
                if self.upstreams:
                    self._down_until[url] = self._monotonic() + self.UPSTREAM_DOWN_SECONDS
            self.deliveries.append(
                DeliveryRecord(entry.update_id, attempt, self._monotonic(), status, error, url, chat_id)
            )
            if error is None:
                entry.handed_out = True
                self.delivered += 1
                self.by_upstream[url] += 1
                if reply is not None:
                    await self._run_reply(*reply)
                return
            self.failed_attempts += 1
            webhook.last_error_date, webhook.last_error_message = self._now(), error
            if attempt < retry.max_attempts:
                await asyncio.sleep(retry.delay(attempt))
        self.dropped += 1
        log.warning("webhook: gave up on update %s after %s attempts", entry.update_id, retry.max_attempts)
