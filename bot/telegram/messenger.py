"""The `Messenger` port (bot/messaging.py) for Telegram: plain outgoing messages become Bot API
calls through the rate-limited sender (bot/telegram/sender.py), and Telegram's errors become the
core's `NotDelivered` / `Unreachable`. Nothing outside bot/telegram builds aiogram objects."""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from bot.messaging import Edit, Keyboard, NotDelivered, Outgoing, Photo, Replies, Sent, Text, Unreachable
from bot.telegram.sender import SenderMiddleware, urgent_sending

log = logging.getLogger(__name__)


def markup(keyboard: Keyboard | None) -> InlineKeyboardMarkup | None:
    if keyboard is None:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=b.text, callback_data=b.callback_data, url=b.url) for b in row]
        for row in keyboard.inline_keyboard])


def not_delivered(exc: TelegramAPIError) -> NotDelivered:
    """Telegram's error as the core's: a 403 (blocked, left) is final; the rest may pass."""
    kind = Unreachable if isinstance(exc, TelegramForbiddenError) else NotDelivered
    return kind(f"{type(exc).__name__}: {exc.message}")


class TelegramMessenger:
    def __init__(self, bot: Bot, sender: SenderMiddleware | None = None) -> None:
        self.bot = bot
        self.sender = sender

    def turn(self, *, urgent: bool = False) -> contextlib.AbstractAsyncContextManager[None]:
        if self.sender is None:
            return contextlib.nullcontext()
        return self.sender.turn(urgent=urgent)

    async def send(self, message: Outgoing) -> Sent | None:
        try:
            return await self._send(message)
        except TelegramAPIError as exc:
            raise not_delivered(exc) from exc

    async def _send(self, item: Outgoing) -> Sent | None:
        if isinstance(item, Text):
            with urgent_sending() if item.urgent else contextlib.nullcontext():
                sent = await self.bot.send_message(item.chat_id, item.text, reply_markup=markup(item.keyboard))
            return Sent(item.chat_id, sent.message_id)
        if isinstance(item, Edit):
            try:
                await self.bot.edit_message_text(text=item.text, chat_id=item.chat_id, message_id=item.message_id,
                                                 reply_markup=markup(item.keyboard))
            except TelegramBadRequest as exc:
                if "not modified" not in exc.message:
                    raise
            return None
        upload = BufferedInputFile(item.content, filename=item.filename)
        if isinstance(item, Photo):
            sent = await self.bot.send_photo(item.chat_id, upload, caption=item.caption or None)
        else:
            sent = await self.bot.send_document(item.chat_id, upload, caption=item.caption or None)
        return Sent(item.chat_id, sent.message_id)

    async def answer_callback(self, replies: Replies) -> None:
        if replies.callback_query_id is None:
            return
        query_id, replies.callback_query_id = replies.callback_query_id, None
        try:
            await self.bot.answer_callback_query(query_id, text=replies.callback_notice)
        except TelegramAPIError as exc:
            # A late answer fails with "query is too old"; the button still did its work.
            log.info("callback answer failed: %s", exc.message[:120])

    async def flush(self, replies: Replies) -> None:
        """After a handler's transaction: answer the button, then send every reply in order. A
        failure is logged (the sender already retried and recorded it) and the rest still go."""
        await self.answer_callback(replies)
        for item in replies.items:
            try:
                await self.send(item)
            except NotDelivered as exc:
                log.warning("reply not delivered (%s): %s", type(item).__name__, str(exc)[:120])
        replies.items.clear()
