"""What the chats hold: the bot's messages (with edits, deletions and files), what users sent, the
users themselves, the callback queries they raised, and the Bot API's JSON shapes of all that."""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.clock import Clock
from bot.sandbox.botapi.errors import ControlError, bad_request
from bot.sandbox.botapi.params import Params, Upload
from bot.sandbox.botapi.text import check_reply_markup, utf16_len
from bot.sandbox.botapi.waiting import Pulse


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
    message_thread_id: int | None = None  # a forum topic of a group (sendMessage's message_thread_id)

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
            "message_thread_id": self.message_thread_id,
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


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 0, 0


class Chats:
    """Every private chat, its user, the callback queries and the uploaded files. `pulse` fires
    whenever a chat changes, for whoever waits for the bot's messages."""

    def __init__(self, bot_user: dict[str, Any], clock: Clock) -> None:
        self.bot_user = bot_user
        self.pulse = Pulse()
        self._clock = clock
        # Kept across clear(): ids of callback queries and files only grow.
        self._callback_seq = itertools.count(1)
        self._file_seq = itertools.count(1)
        # A group chat's shape, from the groups (bot/sandbox/botapi/groups.py); None: a private chat.
        self.describe_group: Callable[[int], dict[str, Any] | None] = lambda chat_id: None
        self.clear()

    def clear(self) -> None:
        self.chats: dict[int, ChatState] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.callbacks: dict[str, CallbackRecord] = {}
        self.files: dict[str, StoredFile] = {}

    def now(self) -> int:
        return int(self._clock.now().timestamp())

    def chat(self, chat_id: int) -> ChatState:
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = ChatState(chat_id)
        return chat

    def sent_count(self, chat_id: int) -> int:
        chat = self.chats.get(chat_id)
        return len(chat.messages) if chat else 0

    # ---- the Bot API's JSON shapes ----------------------------------------------------------

    def chat_json(self, chat_id: int) -> dict[str, Any]:
        group = self.describe_group(chat_id)
        if group is not None:
            return group
        user = self.users.get(chat_id, {})
        chat = {"id": chat_id, "type": "private", "first_name": user.get("first_name", f"User {chat_id}")}
        chat.update({k: user[k] for k in ("last_name", "username") if k in user})
        return chat

    def bot_as_sender(self) -> dict[str, Any]:
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    def message_json(self, chat_id: int, message: SentMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": message.message_id,
            "date": message.date,
            "chat": self.chat_json(chat_id),
            "from": self.bot_as_sender(),
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
            width, height = png_size(stored.data)
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
        if message.message_thread_id is not None:
            out.update(message_thread_id=message.message_thread_id, is_topic_message=True)
        return out

    def add_bot_message(self, chat_id: int, **content: Any) -> SentMessage:
        chat = self.chat(chat_id)
        message = SentMessage(message_id=chat.take_message_id(), date=self.now(), **content)
        chat.messages[message.message_id] = message
        self.pulse.fire()
        return message

    def markup(self, params: Params) -> dict[str, Any] | None:
        raw = params.obj("reply_markup")
        return None if raw is None else check_reply_markup(raw)

    def editable(self, params: Params, what: str) -> tuple[int, SentMessage]:
        chat_id, message_id = params.chat_id(), params.message_id()
        chat = self.chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        if message is None or message.deleted:
            raise bad_request(f"message to {what} not found")
        return chat_id, message

    def record_edit(self, message: SentMessage, method: str) -> None:
        message.edit_date = self.now()
        message.edits.append({"method": method, "date": message.edit_date, **message.content()})
        self.pulse.fire()

    def store_file(self, kind: Literal["document", "photo"], upload: Upload) -> StoredFile:
        if not upload.data:
            raise bad_request("file must be non-empty")
        n = next(self._file_seq)
        stored = StoredFile(
            file_id=f"sandbox-{kind}-{n}",
            file_unique_id=f"sandbox-unique-{n}",
            kind=kind,
            filename=upload.filename or ("photo.jpg" if kind == "photo" else "document"),
            mime_type=upload.content_type,
            data=upload.data,
        )
        self.files[stored.file_id] = stored
        return stored

    def input_file(self, params: Params, kind: Literal["document", "photo"]) -> StoredFile:
        value = params.values.get(kind)
        if not isinstance(value, str) or not value:
            raise bad_request(f"there is no {kind} in the request")
        if value.startswith("attach://"):
            upload = params.uploads.get(value.removeprefix("attach://"))
            if upload is None:
                raise bad_request(f"file {value!r} is not in the request")
            return self.store_file(kind, upload)
        if re.match(r"(?i)https?://", value):
            raise bad_request("the sandbox Bot API does not fetch files by URL; upload the bytes instead")
        stored = self.files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored

    # ---- what users do ----------------------------------------------------------------------

    def remember_user(
        self,
        user_id: int,
        first_name: str | None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        user = self.users.setdefault(user_id, {"id": user_id, "is_bot": False, "first_name": "Participant"})
        given = {
            "first_name": first_name,
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
        }
        user.update({k: v for k, v in given.items() if v is not None})
        return user

    def user_message(self, user_id: int, text: str, user: dict[str, Any]) -> dict[str, Any]:
        """The message `user` writes to the bot in their private chat, kept as the chat's."""
        chat = self.chat(user_id)
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "date": self.now(),
            "chat": self.chat_json(user_id),
            "from": dict(user),
            "text": text,
        }
        _mark_command(message)
        chat.user_messages[message["message_id"]] = {
            "message_id": message["message_id"],
            "date": message["date"],
            "text": text,
            "deleted": False,
        }
        return message

    def user_edit(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The user's earlier message `message_id`, edited to `text` (kept as the chat's)."""
        chat = self.chats.get(user_id)
        sent = chat.user_messages.get(message_id) if chat else None
        if chat is None or sent is None or sent["deleted"]:
            raise ControlError(f"user {user_id} sent no message {message_id} to edit")
        if sent["text"] == text:
            raise ControlError("Bad Request: message is not modified")  # Telegram sends no update then
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": sent.get("date", self.now()),
            "edit_date": self.now(),
            "chat": self.chat_json(user_id),
            "from": dict(self.remember_user(user_id, None)),
            "text": text,
        }
        _mark_command(message)
        sent.setdefault("edits", []).append({"text": sent["text"], "edit_date": message["edit_date"]})
        sent["text"] = text
        return message

    def check_button(self, chat_id: int, message_id: int, data: str) -> None:
        """The bot's message `message_id` exists and carries a button with this callback_data."""
        chat = self.chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        if message is None or message.deleted:
            raise ControlError(f"chat {chat_id} has no message {message_id} from the bot")
        if data not in message.callback_data():
            raise ControlError(
                f"message {message_id} in chat {chat_id} has no button with callback_data {data!r}; "
                f"its buttons carry {message.callback_data()}"
            )

    def button_press(
        self, user: dict[str, Any], chat_id: int, message_id: int, data: str
    ) -> tuple[str, dict[str, Any]]:
        """The callback query of `user` pressing a button of the bot's message: (its id, the query)."""
        chat = self.chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        query_id = str(next(self._callback_seq))
        shown = (
            self.message_json(chat_id, message)
            if message is not None and not message.deleted
            else {"chat": self.chat_json(chat_id), "message_id": message_id, "date": 0}  # inaccessible
        )
        query = {
            "id": query_id,
            "from": dict(user),
            "message": shown,
            "chat_instance": str(chat_id),
            "data": data,
        }
        return query_id, query

    def member_change(self, chat_id: int, *, old: str, new: str) -> dict[str, Any]:
        """The my_chat_member update body Telegram sends when the user blocks or unblocks the bot."""
        user = self.remember_user(chat_id, None)
        bot = self.bot_as_sender()

        def member(status: str) -> dict[str, Any]:
            return {"user": bot, "status": status, **({"until_date": 0} if status == "kicked" else {})}

        return {
            "my_chat_member": {
                "chat": self.chat_json(chat_id), "from": dict(user), "date": self.now(),
                "old_chat_member": member(old), "new_chat_member": member(new),
            }
        }  # fmt: skip


def _mark_command(message: dict[str, Any]) -> None:
    """A text starting with /command carries a bot_command entity, as Telegram adds one."""
    if command := re.match(r"/\S+", message["text"]):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command.group())}]
