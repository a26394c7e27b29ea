"""What a handler wants said, sent after its transaction commits.

Handlers never call Telegram directly: they add to `Replies`, the unit of work commits, then the
replies are sent in order. The database lock is never held across a network call, and nothing
is promised to a participant that was not first written down.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot.telegram.sender import urgent_sending

log = logging.getLogger(__name__)


@dataclass
class _Text:
    chat_id: int
    text: str
    keyboard: InlineKeyboardMarkup | None
    urgent: bool = False  # through the sender's urgent lane (part of a crisis reply)


@dataclass
class _Edit:
    chat_id: int
    message_id: int
    text: str
    keyboard: InlineKeyboardMarkup | None


@dataclass
class _Document:
    chat_id: int
    filename: str
    content: bytes
    caption: str


@dataclass
class Replies:
    callback_query_id: str | None = None
    callback_notice: str | None = None
    items: list[Any] = field(default_factory=list)
    # Set when the handler wrote outbox rows that should go out now rather than at the next tick.
    outbox_due: bool = False

    def text(self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None = None, *,
             urgent: bool = False) -> None:
        """Queue a message; `urgent` ones (the crisis reply's "your care team has been told") go
        ahead of every ordinary message waiting for the rate limit."""
        self.items.append(_Text(chat_id, text, keyboard, urgent))

    def edit(self, chat_id: int, message_id: int, text: str, keyboard: InlineKeyboardMarkup | None = None) -> None:
        self.items.append(_Edit(chat_id, message_id, text, keyboard))

    def document(self, chat_id: int, filename: str, content: bytes, caption: str = "") -> None:
        self.items.append(_Document(chat_id, filename, content, caption))

    def notice(self, text: str) -> None:
        """A short toast on the pressed button."""
        self.callback_notice = text

    def clear(self) -> None:
        self.items.clear()
        self.callback_notice = None

    async def answer_callback(self, bot: Bot) -> None:
        if self.callback_query_id is None:
            return
        query_id, self.callback_query_id = self.callback_query_id, None
        try:
            await bot.answer_callback_query(query_id, text=self.callback_notice)
        except TelegramAPIError as exc:
            # A late answer fails with "query is too old"; the button still did its work.
            log.info("callback answer failed: %s", exc.message[:120])

    async def flush(self, bot: Bot) -> None:
        await self.answer_callback(bot)
        for item in self.items:
            try:
                await _send(bot, item)
            except TelegramAPIError as exc:
                # The sender already retried and recorded the failure; go on with the rest.
                log.warning("reply not delivered (%s): %s", type(item).__name__, exc.message[:120])
        self.items.clear()

    async def deliver(self, bot: Bot) -> tuple[int, int] | None:
        """Send every reply now, in order, for a scheduled row's sender: a failure raises, so the
        row is retried (and its transaction rolled back). Returns (chat id, message id) of the last
        message sent, if any."""
        last: tuple[int, int] | None = None
        for item in self.items:
            sent = await _send(bot, item)
            if sent is not None:
                last = sent
        self.items.clear()
        return last


async def _send(bot: Bot, item: Any) -> tuple[int, int] | None:
    if isinstance(item, _Text):
        with urgent_sending() if item.urgent else contextlib.nullcontext():
            message = await bot.send_message(item.chat_id, item.text, reply_markup=item.keyboard)
        return item.chat_id, message.message_id
    elif isinstance(item, _Edit):
        try:
            await bot.edit_message_text(
                text=item.text, chat_id=item.chat_id, message_id=item.message_id, reply_markup=item.keyboard
            )
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                raise
    elif isinstance(item, _Document):
        await bot.send_document(
            item.chat_id, BufferedInputFile(item.content, filename=item.filename), caption=item.caption or None
        )
    return None
