"""A local imitation of the Telegram Bot API, for tests, benchmarks and the sandbox.

What it is
----------
`FakeBotAPI` is an aiohttp application that answers ``/bot<token>/<method>`` on 127.0.0.1 the way
api.telegram.org does, so the real aiogram client and the real ``iopbot run`` process talk HTTP to
it unchanged (point ``[telegram] api_base`` at it). It keeps all state in memory:

* every chat's messages from the bot, with their buttons, edits, deletions and files;
* updates waiting for the bot: handed out by ``getUpdates`` (offset, limit, long-poll timeout), or
  POSTed to a webhook with the secret header and retried while the webhook does not answer 2xx
  (a Bot API call the webhook puts in its answer, as aiogram can, is run like Telegram runs it);
  only the kinds the bot asked for with ``allowed_updates`` (getUpdates or setWebhook; kept until
  changed; by default every kind but chat_member and the reactions), as Telegram does;
* the callback queries it issued, and whether the bot answered them;
* a log of every request (method, chat, arrival time, outcome) and counters.

Tests drive it through a JSON control API under ``/_control/`` (client: `BotAPIControl`, or the same
methods on `FakeBotAPI` in-process): inject a user's message, an edit of it or a button press, read what a chat
received, script faults (429 with retry_after, 403 blocked, 5xx, slow answers, a seeded random mix),
block users, and tune the rate limits it enforces (about 30 messages/s overall and about 1/s per
chat, as token buckets). Run standalone with ``python -m bot.sandbox.botapi --port N --token T``.

Control endpoints (JSON; errors are 400 {"error": "..."}):

    POST   /_control/reset                    forget chats, updates, faults, logs (not the webhook)
    GET    /_control/stats                    counts by method and outcome, 429s, webhook deliveries
    GET    /_control/requests?method=&chat_id= the request log, in arrival order
    POST   /_control/messages                 {user_id, text, first_name?, language_code?, ...}
    POST   /_control/edits                    {user_id, message_id, text}: the user edits their message
    POST   /_control/updates                  a raw update (update_id optional; an old one replays)
    POST   /_control/callbacks                {user_id, message_id, data, chat_id?, verify?}
    GET    /_control/chats/{id}?min_messages=&timeout=   what the chat holds (optionally waits)
    GET    /_control/files/{file_id}          the bytes of an uploaded file
    POST   /_control/faults | DELETE          {method, kind, chat_id?, times?, retry_after?, status?, delay?}
    PUT    /_control/fault_mix | DELETE       {seed, retry_after_percent, server_error_percent, ...}
    POST   /_control/blocked/{id} | DELETE    {notify?}: the user blocks / unblocks the bot
    GET    /_control/rate_limits | PUT        RateLimits' fields (PUT changes only those given)
    GET    /_control/webhook                  the webhook, allowed_updates, every delivery attempt
    GET    /_control/commands                 what setMyCommands stored, by scope and language

What it does not do
-------------------
* Only the methods the bot uses exist. Any other method answers 404 "Not Found: method not found",
  so a test fails loudly instead of passing against a method that silently does nothing.
* Private chats only; no groups, channels, inline mode, payments or business accounts.
* Files live in memory; files are never fetched by URL (that is a 400); images are not decoded
  (PNG width/height come from its header, other formats report 0x0).
* Text checks approximate Telegram's: HTML and MarkdownV2 are parsed well enough to reject
  unsupported tags and unescaped reserved characters and to measure the visible length, counted in
  UTF-16 code units (the stricter reading of "4096 characters"). Entities are not returned.
* Pending updates never expire (Telegram drops them after 24 h). An update of a kind the bot did
  not ask for is dropped when it would be handed out (Telegram never queues it); one with no
  kind at all (malformed) is handed out.
* A message is recorded when the server answers it, even if the client gave up waiting (as with a
  "slow" fault): like Telegram, a timed-out send may still have been delivered.
* Message dates follow the injected `Clock`; rate limits and retry_after follow the ``monotonic``
  callable (real time by default), since they are about how fast the client really sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import html
import itertools
import json
import logging
import math
import random
import re
import signal
import struct
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, get_args

from aiohttp import (
    BodyPartReader,
    ClientError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    MultipartReader,
    web,
)
from aiohttp.hdrs import CONTENT_TYPE

from bot.clock import Clock, OffsetFileClock, SystemClock

log = logging.getLogger(__name__)

DEFAULT_TOKEN: Final = "123456789:sandbox-token"  # noqa: S105 - the sandbox's own, not a secret
DEFAULT_USERNAME: Final = "iopbot_test_bot"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name

MESSAGE_LIMIT: Final = 4096
CAPTION_LIMIT: Final = 1024
CALLBACK_DATA_LIMIT: Final = 64
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024  # Telegram's upload limit for bots

# The methods Telegram counts as "messages" for its flood limits (lower-cased, as looked up).
SEND_METHODS: Final = frozenset({"sendmessage", "senddocument", "sendphoto"})

BLOCKED_DESCRIPTION: Final = "Forbidden: bot was blocked by the user"
# What a bot gets when it never set allowed_updates (or set it to []): every kind but these.
NOT_SENT_BY_DEFAULT: Final = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_JSON_FIELDS_HINT: Final = {"reply_markup": "reply keyboard markup"}
_BUTTON_ACTIONS: Final = (
    "url", "callback_data", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip
_CHAT_ACTIONS: Final = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})  # fmt: skip


# --------------------------------------------------------------------------------------------
# Errors and settings
# --------------------------------------------------------------------------------------------


class BotAPIError(Exception):
    """An error answer in Telegram's shape; `outcome` says why, for the request log."""

    def __init__(
        self, status: int, description: str, *, retry_after: int | None = None, outcome: str = "error"
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.outcome = outcome

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class ControlError(Exception):
    """A control-API call that cannot be done as asked (HTTP 400 with the reason)."""


class BotAPIControlError(Exception):
    """The control API refused a call (raised by `BotAPIControl`)."""


class BotAPIWaitTimeout(AssertionError):
    """`wait_for_messages` gave up; the message says what the chat had received."""


def _bad_request(detail: str) -> BotAPIError:
    return BotAPIError(400, f"Bad Request: {detail}")


def _too_many_requests(retry_after: int, outcome: str) -> BotAPIError:
    return BotAPIError(
        429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after, outcome=outcome
    )


@dataclass(frozen=True)
class RateLimits:
    """Telegram's flood limits as token buckets: `burst` sends at once, refilled at `per_second`."""

    enabled: bool = True
    global_per_second: float = 30.0
    global_burst: float = 30.0
    per_chat_per_second: float = 1.0
    per_chat_burst: float = 3.0
    # A send to a chat before the retry_after it was given has passed gets 429 again (Telegram
    # lengthens the ban of such clients); independent of `enabled`, so scripted 429s honour it too.
    enforce_retry_after: bool = True


@dataclass(frozen=True)
class WebhookRetry:
    """How the server retries a webhook that did not answer 2xx: doubling delays, bounded."""

    first_delay: float = 0.05
    max_delay: float = 1.0
    max_attempts: int = 10
    request_timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.first_delay * 2 ** (attempt - 1)))


FaultKind = Literal["retry_after", "forbidden", "server_error", "slow"]


@dataclass
class Fault:
    """A scripted fault: applied to the next `times` calls of `method` ("*" = any), for `chat_id`
    if given. "slow" waits `delay` seconds and then answers normally."""

    method: str
    kind: FaultKind
    chat_id: int | None = None
    times: int = 1
    retry_after: int = 1
    status: int = 500
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ControlError(f"fault kind must be one of {get_args(FaultKind)}, not {self.kind!r}")
        if self.times < 1 or self.retry_after < 1 or self.delay < 0 or not 500 <= self.status <= 599:
            raise ControlError("fault needs times >= 1, retry_after >= 1, delay >= 0, 500 <= status <= 599")

    def matches(self, method: str, chat_id: int | None) -> bool:
        method_matches = self.method == "*" or self.method.lower() == method.lower()
        return method_matches and self.chat_id in (None, chat_id)


@dataclass(frozen=True)
class FaultMix:
    """Random faults on a share of calls, reproducible by `seed`. A "timeout" answers after
    `timeout_delay` seconds, longer than a client should wait."""

    seed: int = 0
    retry_after_percent: float = 0.0
    server_error_percent: float = 0.0
    timeout_percent: float = 0.0
    retry_after: int = 1
    timeout_delay: float = 5.0
    methods: tuple[str, ...] = ("sendMessage", "sendDocument", "sendPhoto")

    def __post_init__(self) -> None:
        total = self.retry_after_percent + self.server_error_percent + self.timeout_percent
        if not 0 <= total <= 100 or self.retry_after < 1:
            raise ControlError("fault mix percentages must add up to 0..100 and retry_after be >= 1")
        object.__setattr__(self, "methods", tuple(self.methods))


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One Bot API call as the server saw it; `at` is the `monotonic` time of arrival."""

    seq: int
    method: str
    at: float
    chat_id: int | None = None
    status: int | None = None  # None while the call is still being answered
    outcome: str = "pending"  # ok | error | fault | blocked | rate_limited
    description: str | None = None
    retry_after: int | None = None
    fault: str | None = None
    early_retry: bool = False  # arrived before the retry_after this chat was given had passed
    message_id: int | None = None
    source: str = "http"  # or "webhook reply": a method the bot put in its answer to the webhook


@dataclass
class DeliveryRecord:
    """One attempt to POST an update to the webhook."""

    update_id: int
    attempt: int
    at: float
    status: int | None
    error: str | None


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    kind: Literal["document", "photo"]
    filename: str
    mime_type: str | None
    data: bytes

    def info(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size": len(self.data),
        }


@dataclass
class SentMessage:
    """A message the bot sent, as it is now; `sent` keeps its first version, `edits` the rest."""

    message_id: int
    date: int
    text: str | None = None
    visible_text: str | None = None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    caption: str | None = None
    visible_caption: str | None = None
    file: StoredFile | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    edit_date: int | None = None
    deleted: bool = False
    sent: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sent = self.content()

    def content(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "caption": self.caption,
            "parse_mode": self.parse_mode,
            "reply_markup": self.reply_markup,
        }

    def callback_data(self) -> list[str]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]

    def to_json(self) -> dict[str, Any]:
        kind = self.file.kind if self.file else "text"
        return {
            "message_id": self.message_id,
            "date": self.date,
            "kind": kind,
            "text": self.text,
            "visible_text": self.visible_text,
            "parse_mode": self.parse_mode,
            "reply_markup": self.reply_markup,
            "caption": self.caption,
            "document": self.file.info() if self.file and kind == "document" else None,
            "photo": self.file.info() if self.file and kind == "photo" else None,
            "sent": self.sent,
            "edits": self.edits,
            "deleted": self.deleted,
        }


@dataclass
class CallbackRecord:
    id: str
    update_id: int
    chat_id: int
    message_id: int
    user_id: int
    data: str
    answered: bool = False
    answer_text: str | None = None
    show_alert: bool = False


@dataclass
class ChatState:
    chat_id: int
    next_message_id: int = 1
    messages: dict[int, SentMessage] = field(default_factory=dict)  # the bot's, in order
    user_messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)

    def take_message_id(self) -> int:
        # One counter for both sides: in a private chat, ids are shared by user and bot messages.
        self.next_message_id += 1
        return self.next_message_id - 1


@dataclass
class _Pending:
    seq: int
    update: dict[str, Any]
    # A re-injected update_id is handed out once even if below the offset, so tests can replay.
    replay: bool = False
    handed_out: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Lane:
    """Updates of one chat, delivered to the webhook one after another so their order is kept."""

    queue: deque[_Pending] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


@dataclass
class _TokenBucket:
    per_second: float
    burst: float
    tokens: float
    updated: float

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if it is now), after refilling."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.per_second)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second


class _Pulse:
    """Wakes everyone waiting now; later waiters wait for the next pulse (they re-check state)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, at_most: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), at_most)


# --------------------------------------------------------------------------------------------
# Request parameters and text checks
# --------------------------------------------------------------------------------------------


@dataclass
class _Upload:
    filename: str | None
    content_type: str | None
    data: bytes


class _Params:
    """One call's parameters, typed on access: form fields are strings (objects as JSON text),
    JSON bodies carry real types. Missing or malformed values become Telegram's 400s."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, _Upload]) -> None:
        self.values = values
        self.uploads = uploads

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _bad_request(f'field "{name}" must be of type String')

    def integer(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad_request(f'field "{name}" must be of type Integer') from None

    def number(self, name: str) -> float | None:
        value = self.values.get(name)
        try:
            return None if value is None or value == "" else float(value)
        except (TypeError, ValueError):
            raise _bad_request(f'field "{name}" must be of type Number') from None

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))

    def obj(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise _bad_request(f"can't parse {_JSON_FIELDS_HINT.get(name, name)} JSON object") from None
        return value

    def chat_id_or_none(self) -> int | None:
        try:
            return self.integer("chat_id")
        except BotAPIError:
            return None

    def chat_id(self) -> int:
        if self.values.get("chat_id") in (None, ""):
            raise _bad_request("chat_id is empty")
        chat_id = self.chat_id_or_none()
        if chat_id is None:  # "@username" chats are channels; the sandbox has only private chats
            raise _bad_request("chat not found")
        return chat_id

    def message_id(self) -> int:
        if self.values.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by the sandbox Bot API")
        message_id = self.integer("message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        return message_id


async def _read_params(request: web.Request) -> _Params:
    values: dict[str, Any] = dict(request.query)
    uploads: dict[str, _Upload] = {}
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad_request("request body must be a JSON object")
            values.update(body)
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    uploads[key] = _Upload(value.filename, value.content_type, value.file.read())
                    values[key] = f"attach://{key}"  # a file sent straight in its field, like curl -F
                else:
                    values[key] = value
        else:
            raise _bad_request(f"unsupported Content-Type {request.content_type!r}")
    return _Params(values, uploads)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities_error(detail: str) -> BotAPIError:
    return _bad_request(f"can't parse entities: {detail}")


_HTML_TAGS: Final = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
})  # fmt: skip
_HTML_TAG: Final = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")


def _html_visible(text: str) -> str:
    parts: list[str] = []
    open_tags: list[str] = []
    pos = 0
    while (lt := text.find("<", pos)) != -1:
        parts.append(text[pos:lt])
        offset = len(text[:lt].encode())
        match = _HTML_TAG.match(text, lt)
        if match is None:
            raise _entities_error(f"Unexpected end of name token at byte offset {offset}")
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name not in _HTML_TAGS:
            raise _entities_error(
                f'Unsupported {"end" if closing else "start"} tag "{name}" at byte offset {offset}'
            )
        if not closing:
            open_tags.append(name)
        elif open_tags and open_tags[-1] == name:
            open_tags.pop()
        else:
            raise _entities_error(f'Unmatched end tag at byte offset {offset}, found "</{name}>"')
        pos = match.end()
    if open_tags:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')
    parts.append(text[pos:])
    return html.unescape("".join(parts))


_MDV2_RESERVED: Final = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_MARKS: Final = ("||", "__", "*", "_", "~")  # two-character marks first


def _find_unescaped(text: str, token: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(token, i):
            return i
        else:
            i += 1
    return -1


def _markdown_v2_visible(text: str) -> str:
    out: list[str] = []
    open_marks: list[str] = []
    links = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 == len(text):
                raise _entities_error("Character '\\' at the end of the text must be escaped")
            out.append(text[i + 1])
            i += 2
        elif ch == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = _find_unescaped(text, fence, i + len(fence))
            if end == -1:
                raise _entities_error(
                    f"Can't find end of code entity at byte offset {len(text[:i].encode())}"
                )
            body = text[i + len(fence) : end]
            if fence == "```" and re.match(r"[\w+-]*\n", body):
                body = body.split("\n", 1)[1]  # the first line names the language
            out.append(re.sub(r"\\([`\\])", r"\1", body))
            i = end + len(fence)
        elif mark := next((m for m in _MDV2_MARKS if text.startswith(m, i)), None):
            if mark in open_marks:
                open_marks.remove(mark)
            else:
                open_marks.append(mark)
            i += len(mark)
        elif ch == "[":
            links += 1
            i += 1
        elif ch == "]" and links:
            links -= 1
            i += 1
            if text.startswith("(", i):
                end = _find_unescaped(text, ")", i + 1)
                if end == -1:
                    raise _entities_error("Can't find end of a URL")
                i = end + 1
        elif ch == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # a blockquote line
        elif ch in _MDV2_RESERVED:
            raise _entities_error(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        else:
            out.append(ch)
            i += 1
    if open_marks or links:
        raise _entities_error("Can't find end of an entity")
    return "".join(out)


def _markdown_visible(text: str) -> str:
    # Legacy Markdown is lenient; strip its marks and keep link texts.
    return re.sub(r"[*_`]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text))


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text a user would see: markup parsed (and checked) according to `parse_mode`."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _html_visible(text)
    if mode == "markdownv2":
        return _markdown_v2_visible(text)
    if mode == "markdown":
        return _markdown_visible(text)
    if mode:
        raise _bad_request("unsupported parse_mode")
    return text


def _checked_text(text: str, parse_mode: str | None, *, limit: int, empty: str | None, too_long: str) -> str:
    visible = visible_text(text, parse_mode).strip()  # Telegram trims before measuring
    if not visible and empty is not None:
        raise _bad_request(empty)
    if _utf16_len(visible) > limit:
        raise _bad_request(too_long)
    return visible


def _check_reply_markup(markup: Any) -> dict[str, Any]:
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:  # reply keyboards, remove_keyboard and force_reply are kept as given
        return markup
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request('field "inline_keyboard" must be of type Array of Array')
    for button in itertools.chain.from_iterable(rows):
        if not isinstance(button, dict) or not button.get("text"):
            raise _bad_request("can't parse inline keyboard button: Text must be a non-empty String")
        actions = [name for name in _BUTTON_ACTIONS if name in button]
        if not actions:
            raise _bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            )
        if len(actions) > 1:
            raise _bad_request(
                "can't parse inline keyboard button: exactly one of the optional fields must be used"
            )
        data = button.get("callback_data")
        if data is not None and not (
            isinstance(data, str) and 1 <= len(data.encode()) <= CALLBACK_DATA_LIMIT
        ):
            raise _bad_request("BUTTON_DATA_INVALID")
        url = button.get("url")
        if url is not None and not (isinstance(url, str) and re.fullmatch(r"(?i)(https?|tg)://\S+", url)):
            raise _bad_request(f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol")
    return markup


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 0, 0


async def _webhook_reply(response: ClientResponse) -> tuple[str, _Params] | None:
    """The Bot API call a webhook may put in its answer (aiogram sends it as a multipart form)."""
    values: dict[str, Any] = {}
    uploads: dict[str, _Upload] = {}
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
                    uploads[part.name] = _Upload(part.filename, part.headers.get(CONTENT_TYPE), bytes(data))
                    values[part.name] = f"attach://{part.name}"
                else:
                    values[part.name] = await part.text()
        else:
            await response.read()
    except ValueError as exc:  # the update was delivered all the same; only the reply is unreadable
        log.warning("webhook: unreadable answer body (%s)", type(exc).__name__)
        return None
    method = values.pop("method", None)
    return (str(method), _Params(values, uploads)) if method else None


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


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_Handler = Callable[[_Params], Awaitable[Any]]


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
        self._default_rate_limits = rate_limits or RateLimits()
        self._webhook_retry = webhook_retry or WebhookRetry()
        self._clock: Clock = clock or SystemClock()
        self._monotonic = monotonic
        self._request_log_size = request_log_size
        self._methods: dict[str, tuple[str, _Handler]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("getUpdates", self._get_updates),
                ("setWebhook", self._set_webhook),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("sendMessage", self._send_message),
                ("editMessageText", self._edit_message_text),
                ("editMessageReplyMarkup", self._edit_message_reply_markup),
                ("deleteMessage", self._delete_message),
                ("answerCallbackQuery", self._answer_callback_query),
                ("sendDocument", self._send_document),
                ("sendPhoto", self._send_photo),
                ("sendChatAction", self._send_chat_action),
                ("setMyCommands", self._set_my_commands),
                ("getMyCommands", self._get_my_commands),
                ("deleteMyCommands", self._delete_my_commands),
                ("getChat", self._get_chat),
                ("getFile", self._get_file),
            )
        }
        # Kept across reset(): the bot's own configuration, and counters that must only grow
        # (a polling bot holding offset N would never see a restarted update_id below N).
        self._next_update_id = first_update_id
        self._pending_seq = itertools.count(1)
        self._callback_seq = itertools.count(1)
        self._file_seq = itertools.count(1)
        self._request_seq = itertools.count(1)
        self._webhook: _Webhook | None = None
        # The update kinds the bot asked for (getUpdates or setWebhook); None: Telegram's default.
        self._allowed_updates: frozenset[str] | None = None
        self._webhook_slots = asyncio.Semaphore(40)
        self._lanes: dict[Hashable, _Lane] = {}
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._http: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._updates_pulse = _Pulse()
        self._chats_pulse = _Pulse()
        self._stopping = _Pulse()
        self._poll_generation = 0
        self._closing = False
        self._clear_test_state()

    def _clear_test_state(self) -> None:
        self._chats: dict[int, ChatState] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._pending: dict[int, _Pending] = {}
        self._callbacks: dict[str, CallbackRecord] = {}
        self._files: dict[str, StoredFile] = {}
        self._faults: list[Fault] = []
        self._fault_mix: FaultMix | None = None
        self._mix_random = random.Random(0)  # noqa: S311 - reproducible faults, not secrets
        self._blocked: set[int] = set()
        self._rate_limits = self._default_rate_limits
        self._global_bucket: _TokenBucket | None = None
        self._chat_buckets: dict[int, _TokenBucket] = {}
        self._banned_until: dict[int, float] = {}
        self._requests: deque[RequestRecord] = deque(maxlen=self._request_log_size)
        self._deliveries: deque[DeliveryRecord] = deque(maxlen=self._request_log_size)
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._too_many_requests = 0
        self._early_retries = 0
        self._webhook_delivered = 0
        self._webhook_failed_attempts = 0
        self._webhook_dropped = 0

    # ---- running ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application serving this state (an Application can run only once)."""
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._on_bot_request)
        app.router.add_get("/file/bot{token}/{path:.+}", self._on_file_download)
        app.add_routes(self._control_routes())
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = a free port); returns the base URL for TelegramAPIServer.from_base."""
        if self._runner is not None:
            raise RuntimeError("the fake Bot API is already running")
        self._closing = False
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
        self._closing = True
        self._stopping.fire()
        self._updates_pulse.fire()
        self._chats_pulse.fire()
        await self._stop_lanes()

    async def _on_cleanup(self, _: web.Application) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server shuts down."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._closing and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await self._stopping.wait(left)

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    # ---- the Bot API endpoint ---------------------------------------------------------------

    async def _on_bot_request(self, request: web.Request) -> web.Response:
        authorized = hmac.compare_digest(request.match_info["token"].encode(), self.token.encode())
        status, body = await self._call(
            request.match_info["method"], lambda: _read_params(request), authorized=authorized
        )
        return web.json_response(body, status=status)

    async def _call(
        self,
        name: str,
        read_params: Callable[[], Awaitable[_Params]],
        *,
        authorized: bool = True,
        source: str = "http",
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call, recorded, through faults and limits; returns (status, body)."""
        known = self._methods.get(name.lower())  # Telegram's method names are case-insensitive
        method = known[0] if known else name
        record = RequestRecord(next(self._request_seq), method, self._monotonic(), source=source)
        self._requests.append(record)
        try:
            if not authorized:
                raise BotAPIError(401, "Unauthorized")
            if known is None:
                raise BotAPIError(404, "Not Found: method not found")
            params = await read_params()
            record.chat_id = params.chat_id_or_none()
            charge = await self._screen(record)
            result = await known[1](params)
        except BotAPIError as error:
            self._finish(record, error)
            return error.status, error.body()
        for bucket in charge:  # only what was delivered counts against the limits
            bucket.tokens -= 1
        if isinstance(result, dict) and "message_id" in result:
            record.message_id = result["message_id"]
        self._finish(record, None)
        return 200, {"ok": True, "result": result}

    async def _screen(self, record: RequestRecord) -> list[_TokenBucket]:
        """Faults, blocked users and rate limits, applied before a call does anything. Returns the
        rate-limit buckets to charge if the call succeeds."""
        method, chat_id = record.method, record.chat_id
        limited = method.lower() in SEND_METHODS and chat_id is not None
        if limited and chat_id is not None:
            record.early_retry = self._banned_until.get(chat_id, -math.inf) > record.at
            self._early_retries += record.early_retry
        fault = next((f for f in self._faults if f.matches(method, chat_id)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times == 0:
                self._faults.remove(fault)
            record.fault = fault.kind
            self._raise_fault(fault.kind, fault.retry_after, fault.status)
            await self._sleep(fault.delay)
        if chat_id is not None and chat_id in self._blocked:
            raise BotAPIError(403, BLOCKED_DESCRIPTION, outcome="blocked")
        mix = self._fault_mix
        if mix is not None and method.lower() in (m.lower() for m in mix.methods):
            roll = self._mix_random.random() * 100
            if roll < mix.retry_after_percent + mix.server_error_percent + mix.timeout_percent:
                kind: FaultKind = (
                    "retry_after" if roll < mix.retry_after_percent
                    else "server_error" if roll < mix.retry_after_percent + mix.server_error_percent
                    else "slow"
                )  # fmt: skip
                record.fault = "timeout" if kind == "slow" else kind
                self._raise_fault(kind, mix.retry_after, self._mix_random.choice((500, 502)))
                await self._sleep(mix.timeout_delay)
        if limited and chat_id is not None:
            return self._check_rate(chat_id)
        return []

    @staticmethod
    def _raise_fault(kind: FaultKind, retry_after: int, status: int) -> None:
        if kind == "retry_after":
            raise _too_many_requests(retry_after, outcome="fault")
        if kind == "forbidden":
            raise BotAPIError(403, BLOCKED_DESCRIPTION, outcome="fault")
        if kind == "server_error":
            reason = {500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "Server Error")
            raise BotAPIError(status, reason, outcome="fault")

    def _check_rate(self, chat_id: int) -> list[_TokenBucket]:
        limits, now = self._rate_limits, self._monotonic()
        ban_left = self._banned_until.get(chat_id, -math.inf) - now
        if limits.enforce_retry_after and ban_left > 0:
            raise _too_many_requests(max(1, math.ceil(ban_left)), outcome="rate_limited")
        if not limits.enabled:
            return []
        if self._global_bucket is None:
            self._global_bucket = _TokenBucket(
                limits.global_per_second, limits.global_burst, limits.global_burst, now
            )
        chat_bucket = self._chat_buckets.setdefault(
            chat_id,
            _TokenBucket(limits.per_chat_per_second, limits.per_chat_burst, limits.per_chat_burst, now),
        )
        wait = max(self._global_bucket.wait(now), chat_bucket.wait(now))
        if wait > 0:
            raise _too_many_requests(max(1, math.ceil(wait)), outcome="rate_limited")
        return [self._global_bucket, chat_bucket]

    def _finish(self, record: RequestRecord, error: BotAPIError | None) -> None:
        if error is None:
            record.status, record.outcome = 200, "ok"
        else:
            record.status, record.outcome = error.status, error.outcome
            record.description, record.retry_after = error.description, error.retry_after
            if error.retry_after is not None:
                self._too_many_requests += 1
                if record.chat_id is not None and record.method.lower() in SEND_METHODS:
                    until = self._monotonic() + error.retry_after
                    self._banned_until[record.chat_id] = max(
                        self._banned_until.get(record.chat_id, until), until
                    )
        self._outcomes[(record.method, record.outcome)] += 1
        log.debug("%s chat=%s -> %s %s", record.method, record.chat_id, record.status, record.outcome)

    # ---- chats and messages -----------------------------------------------------------------

    def _chat(self, chat_id: int) -> ChatState:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = ChatState(chat_id)
        return chat

    def _chat_json(self, chat_id: int) -> dict[str, Any]:
        user = self._users.get(chat_id, {})
        chat = {"id": chat_id, "type": "private", "first_name": user.get("first_name", f"User {chat_id}")}
        chat.update({k: user[k] for k in ("last_name", "username") if k in user})
        return chat

    def _bot_as_sender(self) -> dict[str, Any]:
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    def _message_json(self, chat_id: int, message: SentMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": self._chat_json(chat_id),
            "from": self._bot_as_sender(),
        }
        stored = message.file
        if stored is None:
            out["text"] = message.visible_text
        elif stored.kind == "document":
            out["document"] = {
                "file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_name": stored.filename, "file_size": len(stored.data),
            }  # fmt: skip
            if stored.mime_type:
                out["document"]["mime_type"] = stored.mime_type
        else:
            width, height = _png_size(stored.data)
            out["photo"] = [{
                "file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "width": width, "height": height, "file_size": len(stored.data),
            }]  # fmt: skip
        if message.visible_caption:
            out["caption"] = message.visible_caption
        # Telegram returns only inline keyboards as a message's reply_markup.
        if message.reply_markup and "inline_keyboard" in message.reply_markup:
            out["reply_markup"] = message.reply_markup
        if message.edit_date is not None:
            out["edit_date"] = message.edit_date
        return out

    def _add_bot_message(self, chat_id: int, **content: Any) -> SentMessage:
        chat = self._chat(chat_id)
        message = SentMessage(message_id=chat.take_message_id(), date=self._now(), **content)
        chat.messages[message.message_id] = message
        self._chats_pulse.fire()
        return message

    def _markup(self, params: _Params) -> dict[str, Any] | None:
        raw = params.obj("reply_markup")
        return None if raw is None else _check_reply_markup(raw)

    def _editable(self, params: _Params, what: str) -> tuple[int, SentMessage]:
        chat_id, message_id = params.chat_id(), params.message_id()
        chat = self._chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        if message is None or message.deleted:
            raise _bad_request(f"message to {what} not found")
        return chat_id, message

    def _record_edit(self, message: SentMessage, method: str) -> None:
        message.edit_date = self._now()
        message.edits.append({"method": method, "date": message.edit_date, **message.content()})
        self._chats_pulse.fire()

    def _store_file(self, kind: Literal["document", "photo"], upload: _Upload) -> StoredFile:
        if not upload.data:
            raise _bad_request("file must be non-empty")
        n = next(self._file_seq)
        stored = StoredFile(
            file_id=f"sandbox-{kind}-{n}",
            file_unique_id=f"sandbox-unique-{n}",
            kind=kind,
            filename=upload.filename or ("photo.jpg" if kind == "photo" else "document"),
            mime_type=upload.content_type,
            data=upload.data,
        )
        self._files[stored.file_id] = stored
        return stored

    def _input_file(self, params: _Params, kind: Literal["document", "photo"]) -> StoredFile:
        value = params.values.get(kind)
        if not isinstance(value, str) or not value:
            raise _bad_request(f"there is no {kind} in the request")
        if value.startswith("attach://"):
            upload = params.uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad_request(f"file {value!r} is not in the request")
            return self._store_file(kind, upload)
        if re.match(r"(?i)https?://", value):
            raise _bad_request("the sandbox Bot API does not fetch files by URL; upload the bytes instead")
        stored = self._files.get(value)
        if stored is None:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        return stored

    # ---- Bot API methods --------------------------------------------------------------------

    async def _get_me(self, params: _Params) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _set_allowed_updates(self, params: _Params) -> None:
        """`allowed_updates` as Telegram takes it: absent keeps the last setting; [] is the default."""
        given = params.obj("allowed_updates")
        if given is None:
            return
        if not isinstance(given, list) or not all(isinstance(kind, str) for kind in given):
            raise _bad_request("can't parse allowed updates: an Array of String is expected")
        self._allowed_updates = frozenset(given) or None

    def _wanted(self, update: Mapping[str, Any]) -> bool:
        kind = next((key for key in update if key != "update_id"), None)
        if kind is None:
            return True
        if self._allowed_updates is None:
            return kind not in NOT_SENT_BY_DEFAULT
        return kind in self._allowed_updates

    async def _get_updates(self, params: _Params) -> list[dict[str, Any]]:
        self._set_allowed_updates(params)
        offset = params.integer("offset")
        limit = min(max(params.integer("limit") or 100, 1), 100)
        timeout = max(params.number("timeout") or 0.0, 0.0)
        # A newer getUpdates ends an older one with 409, as Telegram does for two pollers.
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_pulse.fire()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._webhook is not None:
                raise BotAPIError(
                    409, "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )  # fmt: skip
            if generation != self._poll_generation:
                raise BotAPIError(
                    409, "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )  # fmt: skip
            batch = self._take_updates(offset, limit)
            left = deadline - loop.time()
            if batch or left <= 0 or self._closing:
                return batch
            await self._updates_pulse.wait(left)

    def _take_updates(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        if offset is not None and offset < 0:  # -N: keep only the last N updates
            for seq in list(self._pending)[:offset]:
                del self._pending[seq]
        elif offset is not None:  # confirms every update below offset
            for seq, entry in list(self._pending.items()):
                if entry.update_id < offset and (entry.handed_out or not entry.replay):
                    del self._pending[seq]
        for seq, entry in list(self._pending.items()):
            if not self._wanted(entry.update):  # a kind the bot did not ask for: Telegram never sends it
                del self._pending[seq]
        batch = sorted(itertools.islice(self._pending.values(), limit), key=lambda e: e.update_id)
        for entry in batch:
            entry.handed_out = True
        return [entry.update for entry in batch]

    async def _set_webhook(self, params: _Params) -> bool:
        url = params.text("url") or ""
        if not url:  # setWebhook with an empty url removes the webhook
            return await self._delete_webhook(params)
        if not re.match(r"(?i)https?://", url):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = min(max(params.integer("max_connections") or 40, 1), 100)
        self._set_allowed_updates(params)
        await self._stop_lanes()
        if params.flag("drop_pending_updates"):
            self._pending.clear()
        self._webhook = _Webhook(url=url, secret_token=secret, max_connections=max_connections)
        self._webhook_slots = asyncio.Semaphore(max_connections)
        for entry in self._pending.values():
            self._enqueue_webhook(entry)
        self._updates_pulse.fire()  # a waiting long poll now ends with 409
        return True

    async def _delete_webhook(self, params: _Params) -> bool:
        await self._stop_lanes()
        self._webhook = None
        if params.flag("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, params: _Params) -> dict[str, Any]:
        webhook = self._webhook
        info: dict[str, Any] = {
            "url": webhook.url if webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        if webhook is not None:
            info["max_connections"] = webhook.max_connections
            if webhook.last_error_date is not None:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
        return info

    async def _send_message(self, params: _Params) -> dict[str, Any]:
        chat_id = params.chat_id()
        text, parse_mode = params.text("text") or "", params.text("parse_mode")
        visible = _checked_text(
            text,
            parse_mode,
            limit=MESSAGE_LIMIT,
            empty="message text is empty",
            too_long="message is too long",
        )
        message = self._add_bot_message(
            chat_id, text=text, visible_text=visible, parse_mode=parse_mode, reply_markup=self._markup(params)
        )
        return self._message_json(chat_id, message)

    async def _send_document(self, params: _Params) -> dict[str, Any]:
        return self._send_file(params, "document")

    async def _send_photo(self, params: _Params) -> dict[str, Any]:
        return self._send_file(params, "photo")

    def _send_file(self, params: _Params, kind: Literal["document", "photo"]) -> dict[str, Any]:
        chat_id = params.chat_id()
        caption, parse_mode = params.text("caption"), params.text("parse_mode")
        visible = None
        if caption:
            visible = _checked_text(
                caption, parse_mode, limit=CAPTION_LIMIT, empty=None, too_long="message caption is too long"
            )
        markup = self._markup(params)
        stored = self._input_file(params, kind)  # last, so a rejected call stores no file
        message = self._add_bot_message(
            chat_id,
            caption=caption,
            visible_caption=visible,
            parse_mode=parse_mode,
            reply_markup=markup,
            file=stored,
        )
        return self._message_json(chat_id, message)

    async def _edit_message_text(self, params: _Params) -> dict[str, Any]:
        chat_id, message = self._editable(params, "edit")
        if message.file is not None:
            raise _bad_request("there is no text in the message to edit")
        text, parse_mode = params.text("text") or "", params.text("parse_mode")
        visible = _checked_text(
            text,
            parse_mode,
            limit=MESSAGE_LIMIT,
            empty="message text is empty",
            too_long="message is too long",
        )
        markup = self._markup(params)  # omitted = the keyboard goes away, as in Telegram
        if (text, parse_mode, markup) == (message.text, message.parse_mode, message.reply_markup):
            raise self._not_modified()
        message.text, message.visible_text, message.parse_mode, message.reply_markup = (
            text,
            visible,
            parse_mode,
            markup,
        )
        self._record_edit(message, "editMessageText")
        return self._message_json(chat_id, message)

    async def _edit_message_reply_markup(self, params: _Params) -> dict[str, Any]:
        chat_id, message = self._editable(params, "edit")
        markup = self._markup(params)
        if markup == message.reply_markup:
            raise self._not_modified()
        message.reply_markup = markup
        self._record_edit(message, "editMessageReplyMarkup")
        return self._message_json(chat_id, message)

    @staticmethod
    def _not_modified() -> BotAPIError:
        return _bad_request(
            "message is not modified: specified new message content and reply markup are exactly "
            "the same as a current content and reply markup of the message"
        )

    async def _delete_message(self, params: _Params) -> bool:
        chat_id, message_id = params.chat_id(), params.message_id()
        chat = self._chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        user_message = chat.user_messages.get(message_id) if chat else None
        if message is not None and not message.deleted:
            message.deleted = True
        elif user_message is not None and not user_message["deleted"]:
            user_message["deleted"] = True  # bots may delete what a user sent them in private chats
        else:
            raise _bad_request("message to delete not found")
        self._chats_pulse.fire()
        return True

    async def _answer_callback_query(self, params: _Params) -> bool:
        query = self._callbacks.get(params.text("callback_query_id") or "")
        if query is None or query.answered:
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        query.answered = True
        query.answer_text = params.text("text")
        query.show_alert = params.flag("show_alert")
        self._chats_pulse.fire()
        return True

    async def _send_chat_action(self, params: _Params) -> bool:
        chat_id, action = params.chat_id(), params.text("action")
        if action not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self._chat(chat_id).actions.append(action)
        return True

    @staticmethod
    def _commands_key(params: _Params) -> str:
        scope = params.obj("scope") or {"type": "default"}
        return json.dumps([scope, params.text("language_code") or ""], sort_keys=True)

    async def _set_my_commands(self, params: _Params) -> bool:
        commands = params.obj("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request('field "commands" must be an Array of at most 100 BotCommand')
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(
                r"[a-z0-9_]{1,32}", str(command.get("command"))
            ):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise _bad_request("command description must be 1-256 characters")
        self._commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: _Params) -> list[dict[str, Any]]:
        return self._commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: _Params) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    async def _get_chat(self, params: _Params) -> dict[str, Any]:
        chat_id = params.chat_id()
        if chat_id not in self._chats and chat_id not in self._users:
            raise _bad_request("chat not found")
        no_gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **self._chat_json(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 0,
            "accepted_gift_types": no_gifts,
        }

    async def _get_file(self, params: _Params) -> dict[str, Any]:
        stored = self._files.get(params.text("file_id") or "")
        if stored is None:
            raise _bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": f"{stored.kind}s/{stored.file_id}",
        }

    async def _on_file_download(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"].encode(), self.token.encode()):
            return web.json_response(BotAPIError(401, "Unauthorized").body(), status=401)
        stored = self._files.get(request.match_info["path"].rpartition("/")[2])
        if stored is None:
            return web.json_response(BotAPIError(404, "Not Found").body(), status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # ---- updates and the webhook ------------------------------------------------------------

    def _push_update(self, body: dict[str, Any]) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._enqueue({"update_id": update_id, **body}, replay=False)
        return update_id

    def _enqueue(self, update: dict[str, Any], *, replay: bool) -> None:
        entry = _Pending(seq=next(self._pending_seq), update=update, replay=replay)
        self._pending[entry.seq] = entry
        if self._webhook is not None:
            self._enqueue_webhook(entry)
        self._updates_pulse.fire()

    def _enqueue_webhook(self, entry: _Pending) -> None:
        key = _lane_key(entry.update)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.task = asyncio.get_running_loop().create_task(self._run_lane(key, lane))
        lane.queue.append(entry)

    async def _stop_lanes(self) -> None:
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        self._lanes = {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_lane(self, key: Hashable, lane: _Lane) -> None:
        try:
            while lane.queue:
                entry = lane.queue[0]
                # Not dropped or reset meanwhile, and of a kind the bot asked for.
                if entry.seq in self._pending and self._wanted(entry.update):
                    await self._deliver(entry)
                    self._pending.pop(entry.seq, None)
                lane.queue.popleft()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, entry: _Pending) -> None:
        webhook, retry = self._webhook, self._webhook_retry
        assert webhook is not None  # lanes are stopped before the webhook is removed
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers[SECRET_HEADER] = webhook.secret_token
        body = json.dumps(entry.update)
        if self._http is None:
            self._http = ClientSession()
        for attempt in range(1, retry.max_attempts + 1):
            status: int | None = None
            try:
                async with (
                    self._webhook_slots,
                    self._http.post(
                        webhook.url,
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
            self._deliveries.append(
                DeliveryRecord(entry.update_id, attempt, self._monotonic(), status, error)
            )
            if error is None:
                entry.handed_out = True
                self._webhook_delivered += 1
                if reply is not None:
                    await self._run_webhook_reply(*reply)
                return
            self._webhook_failed_attempts += 1
            webhook.last_error_date, webhook.last_error_message = self._now(), error
            if attempt < retry.max_attempts:
                await asyncio.sleep(retry.delay(attempt))
        self._webhook_dropped += 1
        log.warning("webhook: gave up on update %s after %s attempts", entry.update_id, retry.max_attempts)

    async def _run_webhook_reply(self, method: str, params: _Params) -> None:
        # Telegram runs a method sent back in the webhook's answer and tells nobody how it went;
        # the request log keeps the outcome.
        async def given() -> _Params:
            return params

        await self._call(method, given, source="webhook reply")

    # ---- control: what tests call (in-process, or over HTTP through BotAPIControl) ----------

    def _remember_user(
        self,
        user_id: int,
        first_name: str | None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        user = self._users.setdefault(user_id, {"id": user_id, "is_bot": False, "first_name": "Participant"})
        given = {
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
        }
        user.update({k: v for k, v in given.items() if v is not None})
        return user

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
        user = self._remember_user(user_id, first_name, last_name, username, language_code)
        chat = self._chat(user_id)
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "date": self._now(),
            "chat": self._chat_json(user_id),
            "from": dict(user),
            "text": text,
        }
        if command := re.match(r"/\S+", text):
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command.group())}
            ]
        chat.user_messages[message["message_id"]] = {
            "message_id": message["message_id"],
            "date": message["date"],
            "text": text,
            "deleted": False,
        }
        return {"update_id": self._push_update({"message": message}), "message": message}

    def edit_message(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The user edits a text message they sent earlier (`inject_message`): the bot gets an
        `edited_message` update with the same message_id and date, the new text and an edit_date.
        Returns {update_id, edited_message}."""
        user_id, message_id = int(user_id), int(message_id)
        if not isinstance(text, str) or not text:
            raise ControlError("text must be a non-empty string")
        chat = self._chats.get(user_id)
        sent = chat.user_messages.get(message_id) if chat else None
        if chat is None or sent is None or sent["deleted"]:
            raise ControlError(f"user {user_id} sent no message {message_id} to edit")
        if sent["text"] == text:
            raise ControlError("Bad Request: message is not modified")  # Telegram sends no update then
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": sent.get("date", self._now()),
            "edit_date": self._now(),
            "chat": self._chat_json(user_id),
            "from": dict(self._remember_user(user_id, None)),
            "text": text,
        }
        if command := re.match(r"/\S+", text):
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command.group())}
            ]
        sent.setdefault("edits", []).append({"text": sent["text"], "edit_date": message["edit_date"]})
        sent["text"] = text
        return {"update_id": self._push_update({"edited_message": message}), "edited_message": message}

    def inject_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update as given (malformed or unknown kinds too). Without update_id it gets
        the next one; with an earlier update_id it is a replay, handed out again once."""
        if not isinstance(update, dict):
            raise ControlError("an update must be a JSON object")
        update = dict(update)
        given = update.get("update_id")
        if given is None:
            update["update_id"] = self._next_update_id
        elif not isinstance(given, int) or isinstance(given, bool):
            raise ControlError("update_id must be an integer")
        update_id = int(update["update_id"])
        replay = update_id < self._next_update_id and given is not None
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._enqueue(update, replay=replay)
        return update_id

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
        chat = self._chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        if verify:
            if message is None or message.deleted:
                raise ControlError(f"chat {chat_id} has no message {message_id} from the bot")
            if data not in message.callback_data():
                raise ControlError(
                    f"message {message_id} in chat {chat_id} has no button with callback_data {data!r}; "
                    f"its buttons carry {message.callback_data()}"
                )
        user = self._remember_user(user_id, first_name)
        query_id = str(next(self._callback_seq))
        shown = (
            self._message_json(chat_id, message)
            if message is not None and not message.deleted
            else {"chat": self._chat_json(chat_id), "message_id": message_id, "date": 0}  # inaccessible
        )
        query = {
            "id": query_id,
            "from": dict(user),
            "message": shown,
            "chat_instance": str(chat_id),
            "data": data,
        }
        update_id = self._push_update({"callback_query": query})
        self._callbacks[query_id] = CallbackRecord(query_id, update_id, chat_id, message_id, user_id, data)
        return {"update_id": update_id, "callback_query_id": query_id, "callback_query": query}

    def chat(self, chat_id: int) -> dict[str, Any]:
        """What a chat holds: the bot's messages in order, the user's, callback queries, actions."""
        chat = self._chats.get(chat_id) or ChatState(chat_id)
        return {
            "chat_id": chat_id,
            "blocked": chat_id in self._blocked,
            "messages": [m.to_json() for m in chat.messages.values()],
            "user_messages": list(chat.user_messages.values()),
            "callback_queries": [asdict(q) for q in self._callbacks.values() if q.chat_id == chat_id],
            "chat_actions": list(chat.actions),
        }

    def _sent_count(self, chat_id: int) -> int:
        chat = self._chats.get(chat_id)
        return len(chat.messages) if chat else 0

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
            self._sent_count(chat_id) < count and (left := deadline - loop.time()) > 0 and not self._closing
        ):
            await self._chats_pulse.wait(left)
        messages: list[dict[str, Any]] = self.chat(chat_id)["messages"]
        if len(messages) < count:
            raise BotAPIWaitTimeout(_describe_wait_failure(chat_id, count, timeout, messages))
        return messages

    def file_bytes(self, file_id: str) -> bytes:
        stored = self._files.get(file_id)
        if stored is None:
            raise ControlError(f"no file {file_id!r}")
        return stored.data

    def add_fault(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_fault_mix(self, mix: FaultMix | None) -> None:
        self._fault_mix = mix
        self._mix_random = random.Random(mix.seed if mix else 0)  # noqa: S311

    def block(self, chat_id: int, *, notify: bool = True) -> None:
        """The user blocks the bot: every call for their chat answers 403 until `unblock`. With
        `notify`, the bot gets the my_chat_member update Telegram sends."""
        self._blocked.add(chat_id)
        if notify:
            self._push_member_update(chat_id, old="member", new="kicked")

    def unblock(self, chat_id: int, *, notify: bool = True) -> None:
        self._blocked.discard(chat_id)
        if notify:
            self._push_member_update(chat_id, old="kicked", new="member")

    def _push_member_update(self, chat_id: int, *, old: str, new: str) -> None:
        user = self._remember_user(chat_id, None)
        bot = self._bot_as_sender()

        def member(status: str) -> dict[str, Any]:
            return {"user": bot, "status": status, **({"until_date": 0} if status == "kicked" else {})}

        self._push_update({
            "my_chat_member": {
                "chat": self._chat_json(chat_id), "from": dict(user), "date": self._now(),
                "old_chat_member": member(old), "new_chat_member": member(new),
            }
        })  # fmt: skip

    @property
    def rate_limits(self) -> RateLimits:
        return self._rate_limits

    def set_rate_limits(self, limits: RateLimits) -> None:
        self._rate_limits = limits
        self._global_bucket = None  # refilled full under the new numbers
        self._chat_buckets.clear()

    def requests(self, *, method: str | None = None, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The request log in arrival order, optionally for one method and/or chat."""
        return [
            asdict(r)
            for r in self._requests
            if (method is None or r.method == method) and (chat_id is None or r.chat_id == chat_id)
        ]

    def stats(self) -> dict[str, Any]:
        by_method: dict[str, dict[str, int]] = {}
        for (method, outcome), n in sorted(self._outcomes.items()):
            by_method.setdefault(method, {})[outcome] = n
        return {
            "requests": sum(self._outcomes.values()),
            "by_method": by_method,
            "too_many_requests": self._too_many_requests,
            "early_retries": self._early_retries,
            "pending_updates": len(self._pending),
            "webhook": {
                "delivered": self._webhook_delivered,
                "failed_attempts": self._webhook_failed_attempts,
                "dropped": self._webhook_dropped,
            },
        }

    def webhook(self) -> dict[str, Any]:
        webhook = self._webhook
        return {
            "url": webhook.url if webhook else None,
            "secret_token_set": bool(webhook and webhook.secret_token),
            "allowed_updates": sorted(self._allowed_updates) if self._allowed_updates is not None else None,
            "pending_updates": len(self._pending),
            "deliveries": [asdict(d) for d in self._deliveries],
        }

    def commands(self) -> dict[str, list[dict[str, Any]]]:
        return dict(self._commands)

    async def reset(self) -> None:
        """Forget everything tests set up or observed. The bot's own setup (webhook, commands) and
        the update_id counter stay, so a bot process keeps working across tests."""
        await self._stop_lanes()
        self._clear_test_state()
        self._chats_pulse.fire()

    # ---- control over HTTP ------------------------------------------------------------------

    def _control_routes(self) -> list[web.RouteDef]:
        c = "/_control"
        return [
            web.post(f"{c}/reset", self._json_route(lambda b, r: self.reset())),
            web.get(f"{c}/stats", self._json_route(lambda b, r: self.stats())),
            web.get(f"{c}/requests", self._json_route(self._c_requests)),
            web.post(f"{c}/messages", self._json_route(lambda b, r: self.inject_message(**b))),
            web.post(f"{c}/edits", self._json_route(lambda b, r: self.edit_message(**b))),
            web.post(f"{c}/updates", self._json_route(lambda b, r: {"update_id": self.inject_update(b)})),
            web.post(f"{c}/callbacks", self._json_route(lambda b, r: self.press_button(**b))),
            web.get(f"{c}/chats/{{chat_id}}", self._json_route(self._c_chat)),
            web.get(f"{c}/files/{{file_id}}", self._c_file),
            web.post(f"{c}/faults", self._json_route(lambda b, r: self.add_fault(Fault(**b)))),
            web.delete(f"{c}/faults", self._json_route(lambda b, r: self.clear_faults())),
            web.put(f"{c}/fault_mix", self._json_route(lambda b, r: self.set_fault_mix(FaultMix(**b)))),
            web.delete(f"{c}/fault_mix", self._json_route(lambda b, r: self.set_fault_mix(None))),
            web.post(f"{c}/blocked/{{chat_id}}", self._json_route(lambda b, r: self.block(_chat_of(r), **b))),
            web.delete(
                f"{c}/blocked/{{chat_id}}", self._json_route(lambda b, r: self.unblock(_chat_of(r), **b))
            ),
            web.get(f"{c}/rate_limits", self._json_route(lambda b, r: asdict(self.rate_limits))),
            web.put(f"{c}/rate_limits", self._json_route(self._c_set_rate_limits)),
            web.get(f"{c}/webhook", self._json_route(lambda b, r: self.webhook())),
            web.get(f"{c}/commands", self._json_route(lambda b, r: self.commands())),
        ]

    @staticmethod
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

    def _c_requests(self, _: dict[str, Any], request: web.Request) -> list[dict[str, Any]]:
        chat_id = request.query.get("chat_id")
        return self.requests(method=request.query.get("method"), chat_id=int(chat_id) if chat_id else None)

    async def _c_chat(self, _: dict[str, Any], request: web.Request) -> dict[str, Any]:
        """GET a chat; with ?min_messages=N&timeout=S it first waits (server-side) for N messages."""
        chat_id = _chat_of(request)
        want, timeout = int(request.query.get("min_messages", 0)), float(request.query.get("timeout", 0))
        with contextlib.suppress(BotAPIWaitTimeout):  # the client compares the count and raises
            await self.wait_for_messages(chat_id, want, min(timeout, 60.0))
        return self.chat(chat_id)

    async def _c_file(self, request: web.Request) -> web.Response:
        stored = self._files.get(request.match_info["file_id"])
        if stored is None:
            return web.json_response({"error": f"no file {request.match_info['file_id']!r}"}, status=404)
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    def _c_set_rate_limits(self, body: dict[str, Any], _: web.Request) -> dict[str, Any]:
        self.set_rate_limits(replace(self._rate_limits, **body))
        return asdict(self._rate_limits)


def _chat_of(request: web.Request) -> int:
    return int(request.match_info["chat_id"])


def _describe_wait_failure(chat_id: int, count: int, timeout: float, messages: list[dict[str, Any]]) -> str:
    seen = [
        f"#{m['message_id']} {m['kind']}: {(m['visible_text'] or m['caption'] or '')[:80]!r}"
        for m in messages
    ]
    expected = f"expected {count} message(s) from the bot within {timeout}s"
    return f"chat {chat_id}: {expected}, got {len(messages)}: {seen}"


# --------------------------------------------------------------------------------------------
# The control client
# --------------------------------------------------------------------------------------------


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
            raise BotAPIWaitTimeout(_describe_wait_failure(chat_id, count, timeout, messages))
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

    async def commands(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/commands")
        return result

    async def reset(self) -> None:
        await self._call("POST", "/reset")


# --------------------------------------------------------------------------------------------
# Standalone process
# --------------------------------------------------------------------------------------------


async def _serve(api: FakeBotAPI, host: str, port: int) -> None:
    url = await api.start(host, port)
    print(url, flush=True)  # the parent process reads this line to learn the port
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await api.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.botapi",
        description="Run the fake Telegram Bot API server. Prints its base URL on one line once it "
        "accepts connections; stops on SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default) picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="do not enforce Telegram's flood limits"
    )
    parser.add_argument("--clock-offset-file", type=Path, help="date messages by this OffsetFileClock")
    args = parser.parse_args(argv)
    api = FakeBotAPI(
        args.token,
        username=args.username,
        rate_limits=RateLimits(enabled=not args.no_rate_limits),
        clock=OffsetFileClock(args.clock_offset_file) if args.clock_offset_file else None,
    )
    asyncio.run(_serve(api, args.host, args.port))


if __name__ == "__main__":
    main()
