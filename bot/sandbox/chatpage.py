"""The sandbox's web page: a Telegram-like chat in the browser, and the small JSON API behind it.

The page is plain HTML, CSS and JavaScript from `static/` (no build step). It asks this server,
never the Bot API directly: who the visitor can be, what a chat holds (long-polled), and to type
a message, press a button, open an invite link or move the clock. This server turns those into
the local Bot API's control calls, so the bot sees exactly what Telegram would send it.

Who the visitor is travels in the page's address (``/?as=therapist``), so each browser tab can be
a different person; ``&chat=group`` shows the demo cohort's group chat as that person sees it
(its messages only to someone inside it), where they can write like any member.

The server only listens on 127.0.0.1; it also refuses requests addressed to another host name
and cross-site POSTs, so a web page elsewhere cannot drive it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Participant, ParticipantStatus, Staff
from bot.sandbox.botapi import MESSAGE_LIMIT, ControlError, FakeBotAPI
from bot.sandbox.demo import GROUP_CHAT_ID, GROUP_TITLE, DemoProgram, Persona, has_open_alert
from bot.sandbox.timetravel import BotClock

STATIC_DIR = Path(__file__).parent / "static"
GROUP_INSIDE = frozenset({"creator", "administrator", "member", "restricted"})
STATIC_FILES = {"sandbox.js": "text/javascript", "sandbox.css": "text/css"}
LONG_POLL_SECONDS = 25.0
POLL_INTERVAL = 0.1

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

STATUS_TEXT = {
    ParticipantStatus.INVITED: "invited, has not opened the link yet",
    ParticipantStatus.CONSENT_PENDING: "opened the link, has not consented yet",
    ParticipantStatus.ONBOARDING: "enrolling (time zone and check-in time)",
    ParticipantStatus.ACTIVE: "active",
    ParticipantStatus.PAUSED: "paused",
    ParticipantStatus.OPTED_OUT: "stopped using the bot",
    ParticipantStatus.DECLINED: "declined consent",
    ParticipantStatus.DISCHARGED: "discharged",
    ParticipantStatus.ALUMNI: "alumni (a check-in every few days)",
}

MOVES = {
    "hour": "+1 hour",
    "day": "+1 day",
    "checkin": "the next check-in",
    "event": "the next scheduled event",
}


class PageError(Exception):
    """A request the page cannot do: HTTP `status` with a message for the visitor."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ChatPage:
    api: FakeBotAPI
    demo: DemoProgram
    clock: BotClock
    sessionmaker: async_sessionmaker[AsyncSession]
    bot_username: str
    program_timezone: str
    add_new_user: Callable[[], Awaitable[Persona]]
    # The Host headers this page answers to; set once the port is known.
    allowed_hosts: set[str] = field(default_factory=set)
    # The demo cohort's group chat (made at start by bot.sandbox.demo.open_cohort_group).
    group_chat_id: int = GROUP_CHAT_ID
    group_title: str = GROUP_TITLE
    # When each user message was written (bot time), for the time stamp beside it.
    _user_dates: dict[tuple[int, int], int] = field(default_factory=dict, init=False)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_get("/api/people", self._people)
        app.router.add_post("/api/people", self._new_person)
        app.router.add_get("/api/chat/{key}", self._chat)
        app.router.add_post("/api/chat/{key}/messages", self._send)
        app.router.add_post("/api/chat/{key}/buttons", self._press)
        app.router.add_post("/api/chat/{key}/invite", self._open_invite)
        app.router.add_get("/api/chat/{key}/files/{file_id}", self._file)
        app.router.add_get("/api/chat/{key}/group", self._group)
        app.router.add_post("/api/chat/{key}/group/messages", self._send_in_group)
        app.router.add_get("/api/clock", self._clock_state)
        app.router.add_post("/api/clock", self._move_clock)
        return app

    # ---- what the visitor does, also used by the seeding ------------------------------------

    def say(self, persona: Persona, text: str) -> dict[str, Any]:
        """`persona` writes `text` to the bot."""
        sent = self.api.inject_message(persona.user_id, text, first_name=persona.first_name, language_code="en")
        message = sent["message"]
        self._user_dates[(persona.user_id, int(message["message_id"]))] = int(message["date"])
        return sent

    # ---- guards -----------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        # A page elsewhere could point a name at 127.0.0.1 (DNS rebinding) or post a form here.
        if request.host not in self.allowed_hosts:  # empty until the port is known: nobody yet
            return web.Response(status=421, text="This sandbox answers only at its 127.0.0.1 address.")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin.split("://", 1)[-1] not in self.allowed_hosts:
                return web.json_response({"error": "cross-site requests are refused"}, status=403)
            if request.content_type != "application/json":
                return web.json_response({"error": "send JSON (Content-Type: application/json)"}, status=415)
        try:
            response = await handler(request)
        except PageError as exc:
            response = web.json_response({"error": exc.message}, status=exc.status)
        except ControlError as exc:
            response = web.json_response({"error": str(exc)}, status=400)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _persona(self, request: web.Request) -> Persona:
        key = request.match_info["key"]
        persona = self.demo.personas.get(key)
        if persona is None:
            raise PageError(404, f"nobody called {key!r} in this sandbox")
        return persona

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise PageError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise PageError(400, "the body must be a JSON object")
        return body

    # ---- the page ---------------------------------------------------------------------------

    async def _index(self, _: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})

    async def _favicon(self, _: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC_DIR / name, headers={"Content-Type": f"{STATIC_FILES[name]}; charset=utf-8"})

    # ---- people -----------------------------------------------------------------------------

    async def _describe(self, session: AsyncSession, persona: Persona) -> dict[str, Any]:
        """A persona as the page shows it, with where they are in the program now."""
        status, timezone, invite = "", self.program_timezone, None
        if persona.kind == "staff":
            staff = await session.scalar(select(Staff).where(Staff.alias == persona.alias))
            status = "enrolled" if staff and staff.telegram_user_id else "not enrolled yet"
        else:
            participant = await session.scalar(select(Participant).where(Participant.alias == persona.alias))
            if participant is not None:
                status = STATUS_TEXT.get(ParticipantStatus(participant.status), participant.status)
                timezone = participant.timezone
                if await has_open_alert(session, persona.alias):
                    status += "; open safety alert"
                token = self.demo.invite_tokens.get(persona.key)
                if participant.status == ParticipantStatus.INVITED and token:
                    invite = {"link": f"https://t.me/{self.bot_username}?start={token}"}
        return {
            "key": persona.key, "label": persona.label, "kind": persona.kind, "alias": persona.alias,
            "name": persona.first_name, "about": persona.about, "status": status, "timezone": timezone,
            "invite": invite,
        }

    async def _people(self, _: web.Request) -> web.Response:
        async with self.sessionmaker() as session:
            people = [await self._describe(session, p) for p in self.demo.personas.values()]
        return web.json_response({"people": people, "bot": {"username": self.bot_username}})

    async def _new_person(self, _: web.Request) -> web.Response:
        persona = await self.add_new_user()
        return web.json_response({"key": persona.key})

    # ---- a chat -----------------------------------------------------------------------------

    def _raw_chat(self, persona: Persona) -> tuple[str, dict[str, Any]]:
        view = self.api.chat(persona.user_id)
        relevant = {k: view[k] for k in ("messages", "user_messages", "callback_queries")}
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return digest, view

    async def _chat(self, request: web.Request) -> web.Response:
        """The chat as it is now; with ?since=VERSION, first wait (up to ?wait= seconds) for a change."""
        persona = self._persona(request)
        since = request.query.get("since")
        try:
            wait = min(float(request.query.get("wait", 0)), LONG_POLL_SECONDS)
        except ValueError:
            raise PageError(400, "wait must be a number of seconds") from None
        loop_time = request.loop.time
        deadline = loop_time() + wait
        version, view = self._raw_chat(persona)
        while since == version and loop_time() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
            version, view = self._raw_chat(persona)
        async with self.sessionmaker() as session:
            described = await self._describe(session, persona)
        zone = ZoneInfo(described["timezone"] or self.program_timezone)
        return web.json_response({
            "version": version,
            "person": described,
            "items": self._items(persona, view, zone),
            "notices": [
                {"id": q["id"], "text": q["answer_text"], "alert": q["show_alert"]}
                for q in view["callback_queries"] if q["answered"] and q["answer_text"]
            ],
        })

    def _items(self, persona: Persona, view: dict[str, Any], zone: ZoneInfo) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for m in view["messages"]:
            if m["deleted"]:
                continue
            stored = m["document"] or m["photo"]
            items.append({
                "id": m["message_id"],
                "from": "bot",
                "time": _time_text(m["date"], zone),
                "kind": m["kind"],
                "text": m["text"] if m["kind"] == "text" else m["caption"],
                "html": (m["parse_mode"] or "").lower() == "html",
                "edited": bool(m["edits"]),
                "buttons": _buttons(m["reply_markup"]),
                "file": None if stored is None else {
                    "url": f"/api/chat/{persona.key}/files/{stored['file_id']}",
                    "name": stored["filename"], "size": stored["size"], "type": stored["mime_type"],
                },
            })
        for u in view["user_messages"]:
            if u["deleted"]:
                continue
            text = u["text"]
            if text.startswith("/start "):
                text = "/start"  # Telegram shows the command, not the invite token behind it
            date = self._user_dates.get((persona.user_id, u["message_id"]))
            items.append({"id": u["message_id"], "from": "you", "text": text,
                          "time": _time_text(date, zone) if date else ""})
        items.sort(key=lambda item: int(item["id"]))
        return items

    async def _send(self, request: web.Request) -> web.Response:
        persona = self._persona(request)
        text = (await self._body(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            raise PageError(400, "type a message first")
        if len(text) > MESSAGE_LIMIT:
            raise PageError(400, f"a Telegram message holds at most {MESSAGE_LIMIT} characters")
        sent = self.say(persona, text)
        return web.json_response({"message_id": sent["message"]["message_id"]})

    async def _press(self, request: web.Request) -> web.Response:
        persona = self._persona(request)
        body = await self._body(request)
        message_id, data = body.get("message_id"), body.get("data")
        if not isinstance(message_id, int) or not isinstance(data, str):
            raise PageError(400, "a button press needs message_id (a number) and data (text)")
        pressed = self.api.press_button(persona.user_id, message_id, data, first_name=persona.first_name)
        return web.json_response({"callback_query_id": pressed["callback_query_id"]})

    async def _open_invite(self, request: web.Request) -> web.Response:
        persona = self._persona(request)
        token = self.demo.invite_tokens.get(persona.key)
        if token is None:
            raise PageError(409, "this person has no invite link")
        self.say(persona, f"/start {token}")  # what Telegram sends when someone opens t.me/bot?start=...
        return web.json_response({"ok": True})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        persona = self._persona(request)
        file_id = request.match_info["file_id"]
        view = self.api.chat(persona.user_id)
        info = next((m["document"] or m["photo"] for m in view["messages"]
                     if (m["document"] or m["photo"] or {}).get("file_id") == file_id), None)
        if info is None:
            raise web.HTTPNotFound(text="no such file in this chat")
        mime = info["mime_type"] or "application/octet-stream"
        photo = any((m["photo"] or {}).get("file_id") == file_id for m in view["messages"])
        # Photos are shown in the page; everything else is downloaded, never rendered here.
        disposition = "inline" if photo and mime.startswith("image/") else "attachment"
        filename = "".join(c for c in info["filename"] if c.isalnum() or c in "._- ") or "file"
        return web.Response(body=self.api.file_bytes(file_id), content_type=mime if disposition == "inline"
                            else "application/octet-stream",
                            headers={"Content-Disposition": f'{disposition}; filename="{filename}"'})

    # ---- the cohort's group chat -------------------------------------------------------------

    def _raw_group(self, persona: Persona) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """(version, the group's view or None when it is not open yet, its messages or None when
        `persona` is not inside: what is written there is only for its members)."""
        try:
            group = self.api.group(self.group_chat_id)
        except ControlError:
            return "not-open", None, None
        status = group["members"].get(str(persona.user_id), "left")
        view = self.api.chat(self.group_chat_id) if status in GROUP_INSIDE else None
        relevant = {"status": status, "topics": group["topics"],
                    "chat": None if view is None else {k: view[k] for k in ("messages", "user_messages")}}
        digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return digest, group, view

    async def _group(self, request: web.Request) -> web.Response:
        """The group chat as `persona` sees it; ?since= and ?wait= as for a private chat."""
        persona = self._persona(request)
        since = request.query.get("since")
        try:
            wait = min(float(request.query.get("wait", 0)), LONG_POLL_SECONDS)
        except ValueError:
            raise PageError(400, "wait must be a number of seconds") from None
        loop_time = asyncio.get_running_loop().time
        deadline = loop_time() + wait
        version, group, view = self._raw_group(persona)
        while since == version and loop_time() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
            version, group, view = self._raw_group(persona)
        async with self.sessionmaker() as session:
            described = await self._describe(session, persona)
        zone = ZoneInfo(described["timezone"] or self.program_timezone)
        if group is None:
            note = "The cohort's group chat is not open yet: the sandbox makes it once the bot is running."
        elif view is None:
            how = ("/group sends you the links to the group chats of the cohorts you lead" if persona.kind == "staff"
                   else "/group asks you to accept the group agreement, then sends your own link")
            note = f"{persona.first_name} is not in the group chat. In the private chat, {how}."
        else:
            note = ""
        topics = {t["message_thread_id"]: t["name"] for t in (group or {}).get("topics", [])}
        return web.json_response({
            "version": version, "person": described, "notices": [],
            "group": {"title": self.group_title, "member": view is not None, "note": note},
            "items": [] if view is None else self._group_items(persona, view, zone, topics),
        })

    def _group_items(self, persona: Persona, view: dict[str, Any], zone: ZoneInfo,
                     topics: dict[int, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for m in view["messages"]:
            if m["deleted"]:
                continue
            items.append({"id": m["message_id"], "from": "bot", "time": _time_text(m["date"], zone), "kind": "text",
                          "text": m["text"], "html": (m["parse_mode"] or "").lower() == "html",
                          "edited": bool(m["edits"]), "buttons": _buttons(m["reply_markup"]), "file": None,
                          "topic": topics.get(m.get("message_thread_id") or 0)})
        for u in view["user_messages"]:
            if u["deleted"]:
                continue
            sender = u.get("from") or {}
            mine = sender.get("id") == persona.user_id
            items.append({"id": u["message_id"], "from": "you" if mine else "peer",
                          "name": "" if mine else sender.get("first_name", "Someone"), "text": u["text"],
                          "time": _time_text(int(u["date"]), zone),
                          "topic": topics.get(u.get("message_thread_id") or 0)})
        items.sort(key=lambda item: int(item["id"]))
        return items

    async def _send_in_group(self, request: web.Request) -> web.Response:
        persona = self._persona(request)
        text = (await self._body(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            raise PageError(400, "type a message first")
        if len(text) > MESSAGE_LIMIT:
            raise PageError(400, f"a Telegram message holds at most {MESSAGE_LIMIT} characters")
        _, group, view = self._raw_group(persona)
        if group is None or view is None:
            raise PageError(403, f"{persona.first_name} is not in the group chat; send /group in the private chat")
        sent = self.api.group_message(self.group_chat_id, persona.user_id, text, first_name=persona.first_name)
        return web.json_response({"message_id": sent["message"]["message_id"]})

    # ---- the clock --------------------------------------------------------------------------

    async def _clock_json(self, moved: str = "") -> dict[str, Any]:
        now = self.clock.now()
        zone = ZoneInfo(self.program_timezone)
        upcoming = await self.clock.next_due(now)
        checkin = await self.clock.next_checkin(now)
        ahead = timedelta(seconds=max(self.clock.offset_seconds(), 0))
        return {
            "now": now.isoformat(),
            "text": f"{now.astimezone(zone):%a %d %b, %H:%M} ({self.program_timezone})",
            "utc": f"{now:%H:%M} UTC",
            "ahead": "running at real time" if ahead < timedelta(minutes=1)
            else f"{_duration_text(ahead)} ahead of real time",
            "next_event": None if upcoming is None else
            f"{upcoming.what} at {upcoming.due_at.astimezone(zone):%a %H:%M}",
            "next_checkin": None if checkin is None else f"{checkin.due_at.astimezone(zone):%a %H:%M}",
            "moved": moved,
        }

    async def _clock_state(self, _: web.Request) -> web.Response:
        return web.json_response(await self._clock_json())

    async def _move_clock(self, request: web.Request) -> web.Response:
        move = (await self._body(request)).get("move")
        if move not in MOVES:
            raise PageError(400, f"move must be one of {', '.join(MOVES)}")
        now = self.clock.now()
        if move == "hour":
            await self.clock.advance(hours=1)
        elif move == "day":
            await self.clock.advance(days=1)
        else:
            upcoming = await (self.clock.next_checkin(now) if move == "checkin" else self.clock.next_due(now))
            if upcoming is None:
                nothing = "No check-in is coming: nobody is active." if move == "checkin" else "Nothing is scheduled."
                return web.json_response(await self._clock_json(nothing))
            await self.clock.advance_to(upcoming.due_at + timedelta(seconds=1))
        moved = _duration_text(self.clock.now() - now)
        return web.json_response(await self._clock_json(f"Moved to {MOVES[move]} ({moved} later)."))


def _buttons(markup: dict[str, Any] | None) -> list[list[dict[str, Any]]]:
    rows = (markup or {}).get("inline_keyboard") or []
    out: list[list[dict[str, Any]]] = []
    for row in rows:
        cells: list[dict[str, Any]] = []
        for button in row:
            if "callback_data" in button:
                cells.append({"text": button["text"], "data": button["callback_data"]})
            elif "url" in button:
                cells.append({"text": button["text"], "url": button["url"]})
            else:
                cells.append({"text": button["text"], "unsupported": True})
        out.append(cells)
    return out


def _time_text(unix: int, zone: ZoneInfo) -> str:
    return f"{datetime.fromtimestamp(unix, UTC).astimezone(zone):%a %H:%M}"


def _duration_text(delta: timedelta) -> str:
    if delta.total_seconds() < 60:
        return "under a minute"
    minutes = round(delta.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 min"
