"""`FakeBotAPI`: the aiohttp server and the state behind it. Each Bot API call is recorded, screened
(faults, blocks, flood limits), run and answered in Telegram's shape; the control methods tests call
in-process (or over HTTP, see `control`) change and read the state."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Final

from aiohttp import web

from bot.clock import Clock, SystemClock
from bot.sandbox.botapi.calls import RequestLog, RequestRecord
from bot.sandbox.botapi.control import control_routes
from bot.sandbox.botapi.errors import BotAPIError, ControlError, wait_timeout
from bot.sandbox.botapi.faults import Fault, FaultMix, Gate, RateLimits
from bot.sandbox.botapi.groups import Groups
from bot.sandbox.botapi.methods import BotMethods
from bot.sandbox.botapi.params import Params, read_params
from bot.sandbox.botapi.state import CallbackRecord, Chats, ChatState, StoredFile
from bot.sandbox.botapi.updates import UpdateQueue
from bot.sandbox.botapi.waiting import Shutdown
from bot.sandbox.botapi.webhook import WebhookDelivery, WebhookRetry

log = logging.getLogger(__name__)

DEFAULT_TOKEN: Final = "123456789:sandbox-token"  # noqa: S105 - the sandbox's own, not a secret
DEFAULT_USERNAME: Final = "iopbot_test_bot"
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024  # Telegram's upload limit for bots


class FakeBotAPI:
    """All the state of the fake Bot API, its aiohttp app, and the control methods tests call."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = DEFAULT_USERNAME,
        first_name: str = "IOP Test Bot",
        rate_limits: RateLimits | None = None,
        webhook_retry: WebhookRetry | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        first_update_id: int = 1,
        request_log_size: int = 100_000,
    ) -> None:
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("token must look like a Telegram token: '<digits>:<secret>'")
        self.token = token
        self.bot_user: dict[str, Any] = {
            "id": int(bot_id), "is_bot": True, "first_name": first_name, "username": username,
        }  # fmt: skip
        self.base_url: str | None = None
        self._monotonic = monotonic
        self._request_log_size = request_log_size
        self._shutdown = Shutdown()
        self._chats = Chats(self.bot_user, clock or SystemClock())
        # reset() clears only what tests set up or observed (_clear_test_state): the bot's own setup
        # (webhook, allowed_updates, commands) stays, and ids only grow (a polling bot holding offset
        # N would never see a restarted update_id below N).
        self._updates = UpdateQueue(first_update_id)
        self._webhook = WebhookDelivery(
            self._updates,
            webhook_retry or WebhookRetry(),
            monotonic=monotonic,
            now=self._chats.now,
            run_reply=self._run_webhook_reply,
            log_size=request_log_size,
        )
        self._updates.on_enqueue = self._webhook.offer
        self._groups = Groups(self._chats, self._updates.push)
        self._chats.describe_group = lambda chat_id: (
            self._groups.chat_json(chat_id) if chat_id in self._groups.groups else None)
        self._methods = BotMethods(self._chats, self._updates, self._webhook, self._shutdown, self._groups)
        self._gate = Gate(rate_limits or RateLimits(), monotonic=monotonic, sleep=self._shutdown.sleep)
        self._request_seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._clear_test_state()

    def _clear_test_state(self) -> None:
        self._chats.clear()
        self._groups.clear()
        self._updates.clear()
        self._gate.clear()
        self._webhook.clear()
        self._log = RequestLog(self._request_log_size)

    @property
    def _requests(self) -> deque[RequestRecord]:
        """The request log's records (tests read them to see what is new since a sequence number)."""
        return self._log.records

    # ---- running ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application serving this state (an Application can run only once)."""
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._on_bot_request)
        app.router.add_get("/file/bot{token}/{path:.+}", self._on_file_download)
        app.add_routes(control_routes(self))
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = a free port); returns the base URL for TelegramAPIServer.from_base."""
        if self._runner is not None:
            raise RuntimeError("the fake Bot API is already running")
        self._shutdown.closing = False
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self.base_url = f"http://{host}:{runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _on_shutdown(self, _: web.Application) -> None:
        # Long polls and waits would otherwise hold the shutdown for their whole timeout.
        self._shutdown.begin()
        self._updates.pulse.fire()
        self._chats.pulse.fire()
        await self._webhook.stop_lanes()

    async def _on_cleanup(self, _: web.Application) -> None:
        await self._webhook.close()

    # ---- the Bot API endpoint ---------------------------------------------------------------

    async def _on_bot_request(self, request: web.Request) -> web.Response:
        authorized = hmac.compare_digest(request.match_info["token"].encode(), self.token.encode())
        status, body = await self._call(
            request.match_info["method"], lambda: read_params(request), authorized=authorized
        )
        return web.json_response(body, status=status)

    async def _call(
        self,
        name: str,
        read_params: Callable[[], Awaitable[Params]],
        *,
        authorized: bool = True,
        source: str = "http",
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call, recorded, through faults and limits; returns (status, body)."""
        known = self._methods.table.get(name.lower())  # Telegram's method names are case-insensitive
        method = known[0] if known else name
        record = RequestRecord(next(self._request_seq), method, self._monotonic(), source=source)
        self._log.records.append(record)
        try:
            if not authorized:
                raise BotAPIError(401, "Unauthorized")
            if known is None:
                raise BotAPIError(404, "Not Found: method not found")
            params = await read_params()
            record.chat_id = params.chat_id_or_none()
            charge = await self._gate.screen(record)
            result = await known[1](params)
        except BotAPIError as error:
            self._finish(record, error)
            return error.status, error.body()
        for bucket in charge:  # only what was delivered counts against the limits
            bucket.charge()
        if isinstance(result, dict) and "message_id" in result:
            record.message_id = result["message_id"]
        self._finish(record, None)
        return 200, {"ok": True, "result": result}

    def _finish(self, record: RequestRecord, error: BotAPIError | None) -> None:
        if error is None:
            record.status, record.outcome = 200, "ok"
        else:
            record.status, record.outcome = error.status, error.outcome
            record.description, record.retry_after = error.description, error.retry_after
            self._gate.note_refusal(record, error)
        self._log.outcomes[(record.method, record.outcome)] += 1
        log.debug("%s chat=%s -> %s %s", record.method, record.chat_id, record.status, record.outcome)

    async def _run_webhook_reply(self, method: str, params: Params) -> None:
        # Telegram runs a method sent back in the webhook's answer and tells nobody how it went;
        # the request log keeps the outcome.
        async def given() -> Params:
            return params

        await self._call(method, given, source="webhook reply")

    async def _on_file_download(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"].encode(), self.token.encode()):
            return web.json_response(BotAPIError(401, "Unauthorized").body(), status=401)
        stored = self._chats.files.get(request.match_info["path"].rpartition("/")[2])
        if stored is None:
            return web.json_response(BotAPIError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # ---- control: what tests call (in-process, or over HTTP through BotAPIControl) ----------

    def inject_message(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """A user writes `text` to the bot in their private chat. Returns {update_id, message}."""
        user_id = int(user_id)  # JSON from the control API may carry "5001"
        if not isinstance(text, str):
            raise ControlError("text must be a string")
        user = self._chats.remember_user(user_id, first_name, last_name, username, language_code)
        message = self._chats.user_message(user_id, text, user)
        return {"update_id": self._updates.push({"message": message}), "message": message}

    def edit_message(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The user edits a text message they sent earlier (`inject_message`): the bot gets an
        `edited_message` update with the same message_id and date, the new text and an edit_date.
        Returns {update_id, edited_message}."""
        user_id, message_id = int(user_id), int(message_id)
        if not isinstance(text, str) or not text:
            raise ControlError("text must be a non-empty string")
        message = self._chats.user_edit(user_id, message_id, text)
        return {"update_id": self._updates.push({"edited_message": message}), "edited_message": message}

    def inject_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update as given (malformed or unknown kinds too). Without update_id it gets
        the next one; with an earlier update_id it is a replay, handed out again once."""
        return self._updates.inject(update)

    def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        verify: bool = True,
        first_name: str | None = None,
    ) -> dict[str, Any]:
        """A user presses an inline button. With `verify`, the bot's message must exist and carry a
        button with this callback_data. Returns {update_id, callback_query_id, callback_query}."""
        user_id, message_id = int(user_id), int(message_id)
        chat_id = user_id if chat_id is None else int(chat_id)
        if not isinstance(data, str):
            raise ControlError("data must be a string")
        chats = self._chats
        if verify:
            chats.check_button(chat_id, message_id, data)
        user = chats.remember_user(user_id, first_name)
        query_id, query = chats.button_press(user, chat_id, message_id, data)
        update_id = self._updates.push({"callback_query": query})
        chats.callbacks[query_id] = CallbackRecord(query_id, update_id, chat_id, message_id, user_id, data)
        return {"update_id": update_id, "callback_query_id": query_id, "callback_query": query}

    def chat(self, chat_id: int) -> dict[str, Any]:
        """What a chat holds: the bot's messages in order, the user's, callback queries, actions."""
        chat = self._chats.chats.get(chat_id) or ChatState(chat_id)
        return {
            "chat_id": chat_id,
            "blocked": chat_id in self._gate.blocked,
            "messages": [m.to_json() for m in chat.messages.values()],
            "user_messages": list(chat.user_messages.values()),
            "callback_queries": [asdict(q) for q in self._chats.callbacks.values() if q.chat_id == chat_id],
            "chat_actions": list(chat.actions),
        }

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - bounded by design
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent `count` messages to the chat; raise with what it had if not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (
            self._chats.sent_count(chat_id) < count
            and (left := deadline - loop.time()) > 0
            and not self._shutdown.closing
        ):
            await self._chats.pulse.wait(left)
        messages: list[dict[str, Any]] = self.chat(chat_id)["messages"]
        if len(messages) < count:
            raise wait_timeout(chat_id, count, timeout, messages)
        return messages

    def file_bytes(self, file_id: str) -> bytes:
        stored = self.stored_file(file_id)
        if stored is None:
            raise ControlError(f"no file {file_id!r}")
        return stored.data

    def stored_file(self, file_id: str) -> StoredFile | None:
        """An uploaded file by its file_id (None if there is none)."""
        return self._chats.files.get(file_id)

    def add_fault(self, fault: Fault) -> None:
        self._gate.faults.append(fault)

    def clear_faults(self) -> None:
        self._gate.faults.clear()

    def set_fault_mix(self, mix: FaultMix | None) -> None:
        self._gate.set_fault_mix(mix)

    def block(self, chat_id: int, *, notify: bool = True) -> None:
        """The user blocks the bot: every call for their chat answers 403 until `unblock`. With
        `notify`, the bot gets the my_chat_member update Telegram sends."""
        self._gate.blocked.add(chat_id)
        if notify:
            self._updates.push(self._chats.member_change(chat_id, old="member", new="kicked"))

    def unblock(self, chat_id: int, *, notify: bool = True) -> None:
        self._gate.blocked.discard(chat_id)
        if notify:
            self._updates.push(self._chats.member_change(chat_id, old="kicked", new="member"))

    @property
    def rate_limits(self) -> RateLimits:
        return self._gate.limits

    def set_rate_limits(self, limits: RateLimits) -> None:
        self._gate.set_rate_limits(limits)

    def requests(self, *, method: str | None = None, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The request log in arrival order, optionally for one method and/or chat."""
        return self._log.filtered(method=method, chat_id=chat_id)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": sum(self._log.outcomes.values()),
            "by_method": self._log.by_method(),
            "too_many_requests": self._gate.too_many_requests,
            "early_retries": self._gate.early_retries,
            "pending_updates": len(self._updates.pending),
            "webhook": self._webhook.stats(),
        }

    def webhook(self) -> dict[str, Any]:
        return self._webhook.view()

    def spread_webhook(self, urls: list[str]) -> dict[str, Any]:
        """Play the load balancer: deliver webhook updates to these URLs round robin (several
        webhook workers), each attempt to the next; [] delivers to the webhook's own URL again."""
        try:
            self._webhook.spread(list(urls))
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from None
        return {"upstreams": list(self._webhook.upstreams)}

    def commands(self) -> dict[str, list[dict[str, Any]]]:
        return dict(self._methods.commands)

    # ---- group mode (bot/sandbox/botapi/groups.py) -------------------------------------------

    def create_group(self, chat_id: int, owner_id: int, *, title: str = "Group", bot_admin: bool = True,
                     members: list[int] | None = None, is_forum: bool = False) -> dict[str, Any]:
        """A supergroup made by `owner_id` (its creator), who adds the bot, as an administrator
        unless `bot_admin` is false (the bot gets my_chat_member), with `members` already in it;
        with Topics turned on when `is_forum`."""
        return self._groups.create(chat_id, title, owner_id=owner_id, bot_admin=bot_admin, members=members,
                                   is_forum=is_forum)

    def set_bot_admin(self, chat_id: int, admin: bool = True, *, by: int) -> dict[str, Any]:
        self._groups.set_bot_admin(chat_id, admin, by=by)
        return self._groups.view(chat_id)

    def group_message(self, chat_id: int, user_id: int, text: str, *, reply_to_message_id: int | None = None,
                      first_name: str | None = None, message_thread_id: int | None = None) -> dict[str, Any]:
        """A member writes in the group (in a forum topic with `message_thread_id`). Returns
        {update_id, message}."""
        if not isinstance(text, str) or not text:
            raise ControlError("text must be a non-empty string")
        return self._groups.write(chat_id, user_id, text, reply_to_message_id=reply_to_message_id,
                                  first_name=first_name, message_thread_id=message_thread_id)

    def join_with_link(self, user_id: int, invite_link: str, *, first_name: str | None = None) -> dict[str, Any]:
        """A user opens an invite link: a chat_join_request for a link that asks for approval."""
        return self._groups.request_join(user_id, invite_link, first_name=first_name)

    def add_to_group(self, chat_id: int, user_id: int, *, by: int) -> dict[str, Any]:
        """An admin adds someone directly (no join request)."""
        self._groups.add(chat_id, user_id, by=by)
        return self._groups.view(chat_id)

    def leave_group(self, chat_id: int, user_id: int) -> dict[str, Any]:
        self._groups.leave(chat_id, user_id)
        return self._groups.view(chat_id)

    def group(self, chat_id: int) -> dict[str, Any]:
        """Members and their status, pending join requests, decisions, invite links."""
        return self._groups.view(chat_id)

    async def reset(self) -> None:
        """Forget everything tests set up or observed. The bot's own setup (webhook, commands) and
        the update_id counter stay, so a bot process keeps working across tests."""
        await self._webhook.stop_lanes()
        self._clear_test_state()
        self._chats.pulse.fire()
