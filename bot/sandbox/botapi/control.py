"""The control API, both ends: its HTTP routes under ``/_control/`` on the server, and
`BotAPIControl`, the client tests use to drive the server in another process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from aiohttp import ClientSession, web

from bot.sandbox.botapi.errors import BotAPIControlError, BotAPIWaitTimeout, ControlError, wait_timeout
from bot.sandbox.botapi.faults import Fault, FaultKind, FaultMix

if TYPE_CHECKING:
    from bot.sandbox.botapi.server import FakeBotAPI


def control_routes(api: FakeBotAPI) -> list[web.RouteDef]:
    """The control endpoints over `api`'s control methods (JSON; errors are 400 {"error": "..."})."""

    def requests(_: dict[str, Any], request: web.Request) -> list[dict[str, Any]]:
        chat_id = request.query.get("chat_id")
        return api.requests(method=request.query.get("method"), chat_id=int(chat_id) if chat_id else None)

    async def chat(_: dict[str, Any], request: web.Request) -> dict[str, Any]:
        """GET a chat; with ?min_messages=N&timeout=S it first waits (server-side) for N messages."""
        chat_id = _chat_of(request)
        want, timeout = int(request.query.get("min_messages", 0)), float(request.query.get("timeout", 0))
        with contextlib.suppress(BotAPIWaitTimeout):  # the client compares the count and raises
            await api.wait_for_messages(chat_id, want, min(timeout, 60.0))
        return api.chat(chat_id)

    async def file(request: web.Request) -> web.Response:
        stored = api.stored_file(request.match_info["file_id"])
        if stored is None:
            return web.json_response({"error": f"no file {request.match_info['file_id']!r}"}, status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    def set_rate_limits(body: dict[str, Any], _: web.Request) -> dict[str, Any]:
        api.set_rate_limits(replace(api.rate_limits, **body))
        return asdict(api.rate_limits)

    c = "/_control"
    return [
        web.post(f"{c}/reset", _json_route(lambda b, r: api.reset())),
        web.get(f"{c}/stats", _json_route(lambda b, r: api.stats())),
        web.get(f"{c}/requests", _json_route(requests)),
        web.post(f"{c}/messages", _json_route(lambda b, r: api.inject_message(**b))),
        web.post(f"{c}/edits", _json_route(lambda b, r: api.edit_message(**b))),
        web.post(f"{c}/updates", _json_route(lambda b, r: {"update_id": api.inject_update(b)})),
        web.post(f"{c}/callbacks", _json_route(lambda b, r: api.press_button(**b))),
        web.get(f"{c}/chats/{{chat_id}}", _json_route(chat)),
        web.get(f"{c}/files/{{file_id}}", file),
        web.post(f"{c}/faults", _json_route(lambda b, r: api.add_fault(Fault(**b)))),
        web.delete(f"{c}/faults", _json_route(lambda b, r: api.clear_faults())),
        web.put(f"{c}/fault_mix", _json_route(lambda b, r: api.set_fault_mix(FaultMix(**b)))),
        web.delete(f"{c}/fault_mix", _json_route(lambda b, r: api.set_fault_mix(None))),
        web.post(f"{c}/blocked/{{chat_id}}", _json_route(lambda b, r: api.block(_chat_of(r), **b))),
        web.delete(f"{c}/blocked/{{chat_id}}", _json_route(lambda b, r: api.unblock(_chat_of(r), **b))),
        web.get(f"{c}/rate_limits", _json_route(lambda b, r: asdict(api.rate_limits))),
        web.put(f"{c}/rate_limits", _json_route(set_rate_limits)),
        web.get(f"{c}/webhook", _json_route(lambda b, r: api.webhook())),
        web.put(f"{c}/webhook/upstreams", _json_route(lambda b, r: api.spread_webhook(b.get("urls", [])))),
        web.get(f"{c}/commands", _json_route(lambda b, r: api.commands())),
        web.post(f"{c}/groups", _json_route(lambda b, r: api.create_group(**b))),
        web.get(f"{c}/groups/{{chat_id}}", _json_route(lambda b, r: api.group(_chat_of(r)))),
        web.put(f"{c}/groups/{{chat_id}}/bot_admin", _json_route(
            lambda b, r: api.set_bot_admin(_chat_of(r), **b))),
        web.post(f"{c}/groups/{{chat_id}}/messages", _json_route(
            lambda b, r: api.group_message(_chat_of(r), **b))),
        web.post(f"{c}/groups/{{chat_id}}/members", _json_route(lambda b, r: api.add_to_group(_chat_of(r), **b))),
        web.delete(f"{c}/groups/{{chat_id}}/members/{{user_id}}", _json_route(
            lambda b, r: api.leave_group(_chat_of(r), int(r.match_info["user_id"])))),
        web.post(f"{c}/join", _json_route(lambda b, r: api.join_with_link(**b))),
    ]


def _json_route(
    action: Callable[[dict[str, Any], web.Request], Any],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.body_exists else {}
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            result = action(body, request)
            if asyncio.iscoroutine(result):
                result = await result
        # TypeError: unknown or missing arguments in the body, said by the called method.
        except (ControlError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True} if result is None else result)

    return handle


def _chat_of(request: web.Request) -> int:
    return int(request.match_info["chat_id"])


class BotAPIControl:
    """Async client of the control API at `base_url` (the server's base URL, without /_control)."""

    def __init__(self, base_url: str, *, session: ClientSession | None = None) -> None:
        self._url = base_url.rstrip("/") + "/_control"
        self._session = session
        self._own_session = session is None

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> BotAPIControl:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _http(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession()
        return self._session

    async def _call(
        self, verb: str, path: str, *, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None
    ) -> Any:
        async with self._http().request(verb, self._url + path, json=body, params=query) as response:
            if response.status >= 400:
                raise BotAPIControlError(f"{verb} /_control{path}: {response.status} {await response.text()}")
            return await response.json()

    async def inject_message(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        given = {
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
        }
        body = {"user_id": user_id, "text": text, **{k: v for k, v in given.items() if v is not None}}
        result: dict[str, Any] = await self._call("POST", "/messages", body=body)
        return result

    async def edit_message(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The user edits their message `message_id` to `text` (the bot gets an edited_message)."""
        body = {"user_id": user_id, "message_id": message_id, "text": text}
        result: dict[str, Any] = await self._call("POST", "/edits", body=body)
        return result

    async def inject_update(self, update: dict[str, Any]) -> int:
        return int((await self._call("POST", "/updates", body=update))["update_id"])

    async def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        verify: bool = True,
        first_name: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "message_id": message_id, "data": data, "verify": verify}
        body.update({k: v for k, v in (("chat_id", chat_id), ("first_name", first_name)) if v is not None})
        result: dict[str, Any] = await self._call("POST", "/callbacks", body=body)
        return result

    async def chat(self, chat_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/chats/{chat_id}")
        return result

    async def sent_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return list((await self.chat(chat_id))["messages"])

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - bounded by design
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent at least `count` messages to the chat (the server holds the
        request until then or until `timeout`); raise BotAPIWaitTimeout with what it saw if not."""
        view = await self._call("GET", f"/chats/{chat_id}", query={"min_messages": count, "timeout": timeout})
        messages: list[dict[str, Any]] = view["messages"]
        if len(messages) < count:
            raise wait_timeout(chat_id, count, timeout, messages)
        return messages

    async def file_bytes(self, file_id: str) -> bytes:
        async with self._http().get(f"{self._url}/files/{file_id}") as response:
            if response.status != 200:
                raise BotAPIControlError(
                    f"GET /_control/files/{file_id}: {response.status} {await response.text()}"
                )
            return await response.read()

    async def add_fault(
        self,
        method: str,
        kind: FaultKind,
        *,
        chat_id: int | None = None,
        times: int = 1,
        retry_after: int = 1,
        status: int = 500,
        delay: float = 0.0,
    ) -> None:
        await self._call(
            "POST", "/faults", body=asdict(Fault(method, kind, chat_id, times, retry_after, status, delay))
        )

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def set_fault_mix(
        self,
        *,
        seed: int,
        retry_after_percent: float = 0.0,
        server_error_percent: float = 0.0,
        timeout_percent: float = 0.0,
        retry_after: int = 1,
        timeout_delay: float = 5.0,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        mix = FaultMix(
            seed, retry_after_percent, server_error_percent, timeout_percent, retry_after, timeout_delay
        )
        if methods is not None:
            mix = replace(mix, methods=tuple(methods))
        await self._call("PUT", "/fault_mix", body=asdict(mix))

    async def clear_fault_mix(self) -> None:
        await self._call("DELETE", "/fault_mix")

    async def block(self, chat_id: int, *, notify: bool = True) -> None:
        await self._call("POST", f"/blocked/{chat_id}", body={"notify": notify})

    async def unblock(self, chat_id: int, *, notify: bool = True) -> None:
        await self._call("DELETE", f"/blocked/{chat_id}", body={"notify": notify})

    async def rate_limits(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/rate_limits")
        return result

    async def set_rate_limits(self, **changes: Any) -> dict[str, Any]:
        """Change some of RateLimits' fields (enabled, global_per_second, per_chat_burst, ...)."""
        result: dict[str, Any] = await self._call("PUT", "/rate_limits", body=changes)
        return result

    async def requests(
        self, *, method: str | None = None, chat_id: int | None = None
    ) -> list[dict[str, Any]]:
        query = {k: str(v) for k, v in (("method", method), ("chat_id", chat_id)) if v is not None}
        result: list[dict[str, Any]] = await self._call("GET", "/requests", query=query)
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/stats")
        return result

    async def webhook(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/webhook")
        return result

    async def spread_webhook(self, urls: list[str]) -> dict[str, Any]:
        """Be the load balancer: webhook updates go to these URLs round robin ([]: the webhook's own)."""
        result: dict[str, Any] = await self._call("PUT", "/webhook/upstreams", body={"urls": list(urls)})
        return result

    async def commands(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/commands")
        return result

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    # ---- group mode -----------------------------------------------------------------------------

    async def create_group(self, chat_id: int, owner_id: int, *, title: str = "Group", bot_admin: bool = True,
                           members: list[int] | None = None, is_forum: bool = False) -> dict[str, Any]:
        body = {"chat_id": chat_id, "owner_id": owner_id, "title": title, "bot_admin": bot_admin,
                "members": members or [], "is_forum": is_forum}
        result: dict[str, Any] = await self._call("POST", "/groups", body=body)
        return result

    async def group(self, chat_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/groups/{chat_id}")
        return result

    async def set_bot_admin(self, chat_id: int, admin: bool = True, *, by: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("PUT", f"/groups/{chat_id}/bot_admin",
                                                  body={"admin": admin, "by": by})
        return result

    async def group_message(self, chat_id: int, user_id: int, text: str, *, reply_to_message_id: int | None = None,
                            first_name: str | None = None, message_thread_id: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "text": text}
        body.update({k: v for k, v in (("reply_to_message_id", reply_to_message_id), ("first_name", first_name),
                                       ("message_thread_id", message_thread_id)) if v is not None})
        result: dict[str, Any] = await self._call("POST", f"/groups/{chat_id}/messages", body=body)
        return result

    async def join_with_link(self, user_id: int, invite_link: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/join", body={"user_id": user_id,
                                                                        "invite_link": invite_link})
        return result

    async def add_to_group(self, chat_id: int, user_id: int, *, by: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/groups/{chat_id}/members",
                                                  body={"user_id": user_id, "by": by})
        return result

    async def leave_group(self, chat_id: int, user_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("DELETE", f"/groups/{chat_id}/members/{user_id}")
        return result
