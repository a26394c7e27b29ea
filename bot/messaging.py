"""What the bot says, as plain data, and the one port through which it is said.

The core (services, flows, safety, content, db) never talks to Telegram. It builds messages here:
a text with buttons, an edit, a document or a photo, marked urgent when it belongs to a crisis reply or a
page, and hands them to a `Messenger`. The Telegram edge (bot/telegram/messenger.py) implements
the port with the rate-limited sender; a test or another channel could implement it too.

Handlers collect what they want said in `Replies`; the unit of work commits, then the replies are
sent in order. The database lock is never held across a network call, and nothing is promised to
a participant that was not first written down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# Telegram allows 1-64 bytes of callback data; ours never hold text a person wrote.
MAX_CALLBACK_BYTES = 64


@dataclass(frozen=True)
class Button:
    """One inline button: it either sends `callback_data` back to us or opens `url`."""

    text: str
    callback_data: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Keyboard:
    """Rows of inline buttons under a message (the field name is Telegram's)."""

    inline_keyboard: tuple[tuple[Button, ...], ...]

    def __add__(self, other: Keyboard) -> Keyboard:
        return Keyboard(self.inline_keyboard + other.inline_keyboard)


Choice = tuple[str, str]  # (label, callback_data)


def keyboard(rows: Sequence[Sequence[Choice]]) -> Keyboard:
    for row in rows:
        for _, data in row:
            if not 1 <= len(data.encode()) <= MAX_CALLBACK_BYTES:
                raise ValueError(f"callback data must be 1-{MAX_CALLBACK_BYTES} bytes, got {len(data.encode())}")
    return Keyboard(tuple(tuple(Button(label, callback_data=data) for label, data in row) for row in rows))


def link_row(label: str, url: str) -> Keyboard:
    """One row with one button that opens a link (a session's video call)."""
    return Keyboard(((Button(label, url=url),),))


def in_rows(choices: Sequence[Choice], per_row: int) -> list[list[Choice]]:
    return [list(choices[i : i + per_row]) for i in range(0, len(choices), per_row)]


@dataclass(frozen=True)
class Text:
    chat_id: int
    text: str
    keyboard: Keyboard | None = None
    urgent: bool = False  # through the sender's urgent lane (a crisis reply, a page)


@dataclass(frozen=True)
class Edit:
    chat_id: int
    message_id: int
    text: str
    keyboard: Keyboard | None = None


@dataclass(frozen=True)
class Document:
    chat_id: int
    filename: str
    content: bytes
    caption: str = ""


@dataclass(frozen=True)
class Photo:
    """A picture (a chart as PNG): shown inline, unlike a document."""

    chat_id: int
    filename: str
    content: bytes
    caption: str = ""


Outgoing = Text | Edit | Document | Photo


@dataclass(frozen=True)
class Sent:
    chat_id: int
    message_id: int


class NotDelivered(Exception):
    """The messenger gave up on a message (after its own retries); the reason is safe to log."""


class Unreachable(NotDelivered):
    """The person blocked the bot or left: trying again will not help."""


class Messenger(Protocol):
    """The one way out. Implemented in the Telegram edge by `TelegramMessenger`."""

    async def send(self, message: Outgoing) -> Sent | None:
        """Send one message; raise `NotDelivered` (or `Unreachable`) when it could not be."""
        ...

    def turn(self, *, urgent: bool = False) -> contextlib.AbstractAsyncContextManager[None]:
        """Wait for a turn of the global rate limit before a transaction opens; the first send
        inside the block uses it (queueing for the limit then holds no database connection)."""
        ...


@dataclass
class Replies:
    """What one update (or one scheduled row) wants said, in order."""

    callback_query_id: str | None = None
    callback_notice: str | None = None
    items: list[Outgoing] = field(default_factory=list)
    # Set when the handler wrote outbox rows that should go out now rather than at the next tick.
    outbox_due: bool = False

    def text(self, chat_id: int, text: str, keyboard: Keyboard | None = None, *, urgent: bool = False) -> None:
        """Queue a message; `urgent` ones (the crisis reply's "your care team has been told") go
        ahead of every ordinary message waiting for the rate limit."""
        self.items.append(Text(chat_id, text, keyboard, urgent))

    def edit(self, chat_id: int, message_id: int, text: str, keyboard: Keyboard | None = None) -> None:
        self.items.append(Edit(chat_id, message_id, text, keyboard))

    def document(self, chat_id: int, filename: str, content: bytes, caption: str = "") -> None:
        self.items.append(Document(chat_id, filename, content, caption))

    def photo(self, chat_id: int, filename: str, content: bytes, caption: str = "") -> None:
        self.items.append(Photo(chat_id, filename, content, caption))

    def notice(self, text: str) -> None:
        """A short toast on the pressed button."""
        self.callback_notice = text

    def clear(self) -> None:
        self.items.clear()
        self.callback_notice = None

    async def deliver(self, messenger: Messenger) -> Sent | None:
        """Send every reply now, in order, for a scheduled row's sender: a failure raises, so the
        row is retried (and its transaction rolled back). Returns the last message sent, if any."""
        last: Sent | None = None
        for item in self.items:
            sent = await messenger.send(item)
            if sent is not None:
                last = sent
        self.items.clear()
        return last


async def say(messenger: Messenger, chat_id: int, text: str, keyboard: Keyboard | None = None, *,
              urgent: bool = False) -> Sent:
    """Send one text now (a scheduled row's sender); raises `NotDelivered` when it could not be."""
    sent = await messenger.send(Text(chat_id, text, keyboard, urgent))
    if sent is None:
        raise NotDelivered("the messenger returned no message for a text")
    return sent
