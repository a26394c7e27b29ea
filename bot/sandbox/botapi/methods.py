"""The Bot API methods the bot uses, each as Telegram answers it. Any other method is unknown (404),
so a test fails loudly instead of passing against a method that silently does nothing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

from bot.sandbox.botapi.errors import BotAPIError, bad_request
from bot.sandbox.botapi.groups import Groups
from bot.sandbox.botapi.params import Params
from bot.sandbox.botapi.state import Chats
from bot.sandbox.botapi.text import CAPTION_LIMIT, MESSAGE_LIMIT, checked_text
from bot.sandbox.botapi.updates import UpdateQueue
from bot.sandbox.botapi.waiting import Shutdown
from bot.sandbox.botapi.webhook import WebhookDelivery

_CHAT_ACTIONS: Final = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})  # fmt: skip

Handler = Callable[[Params], Awaitable[Any]]


class BotMethods:
    """The handlers of the Bot API methods, over the chats, the update queue and the webhook.
    `table` maps a lower-cased method name to (its proper name, its handler)."""

    def __init__(self, chats: Chats, updates: UpdateQueue, webhook: WebhookDelivery, shutdown: Shutdown,
                 groups: Groups) -> None:
        self._chats = chats
        self._groups = groups
        self._updates = updates
        self._webhook = webhook
        self._shutdown = shutdown
        self.commands: dict[str, list[dict[str, Any]]] = {}  # the bot's own setup: kept across reset
        self._poll_generation = 0
        self.table: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("getUpdates", self._get_updates),
                ("setWebhook", webhook.set),
                ("deleteWebhook", webhook.delete),
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
                *groups.table(),  # group mode: links, join requests, bans, restrictions, members
            )
        }

    async def _get_me(self, params: Params) -> dict[str, Any]:
        return {
            **self._chats.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, params: Params) -> list[dict[str, Any]]:
        self._updates.set_allowed_updates(params)
        offset = params.integer("offset")
        limit = min(max(params.integer("limit") or 100, 1), 100)
        timeout = max(params.number("timeout") or 0.0, 0.0)
        # A newer getUpdates ends an older one with 409, as Telegram does for two pollers.
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates.pulse.fire()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._webhook.config is not None:
                raise BotAPIError(
                    409, "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )  # fmt: skip
            if generation != self._poll_generation:
                raise BotAPIError(
                    409, "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )  # fmt: skip
            batch = self._updates.take(offset, limit)
            left = deadline - loop.time()
            if batch or left <= 0 or self._shutdown.closing:
                return batch
            await self._updates.pulse.wait(left)

    async def _get_webhook_info(self, params: Params) -> dict[str, Any]:
        return self._webhook.info()

    async def _send_message(self, params: Params) -> dict[str, Any]:
        chat_id = params.chat_id()
        self._groups.check_can_post(chat_id)
        thread = params.integer("message_thread_id")
        if thread is not None:
            self._groups.check_topic(chat_id, thread)  # a forum topic of that group
        text, parse_mode, visible = _message_text(params)
        message = self._chats.add_bot_message(
            chat_id, text=text, visible_text=visible, parse_mode=parse_mode, reply_markup=self._chats.markup(params),
            message_thread_id=thread,
        )
        return self._chats.message_json(chat_id, message)

    async def _send_document(self, params: Params) -> dict[str, Any]:
        return self._send_file(params, "document")

    async def _send_photo(self, params: Params) -> dict[str, Any]:
        return self._send_file(params, "photo")

    def _send_file(self, params: Params, kind: Literal["document", "photo"]) -> dict[str, Any]:
        chat_id = params.chat_id()
        caption, parse_mode = params.text("caption"), params.text("parse_mode")
        visible = None
        if caption:
            visible = checked_text(
                caption, parse_mode, limit=CAPTION_LIMIT, empty=None, too_long="message caption is too long"
            )
        markup = self._chats.markup(params)
        stored = self._chats.input_file(params, kind)  # last, so a rejected call stores no file
        message = self._chats.add_bot_message(
            chat_id,
            caption=caption,
            visible_caption=visible,
            parse_mode=parse_mode,
            reply_markup=markup,
            file=stored,
        )
        return self._chats.message_json(chat_id, message)

    async def _edit_message_text(self, params: Params) -> dict[str, Any]:
        chat_id, message = self._chats.editable(params, "edit")
        if message.file is not None:
            raise bad_request("there is no text in the message to edit")
        text, parse_mode, visible = _message_text(params)
        markup = self._chats.markup(params)  # omitted = the keyboard goes away, as in Telegram
        if (text, parse_mode, markup) == (message.text, message.parse_mode, message.reply_markup):
            raise self._not_modified()
        message.text, message.visible_text, message.parse_mode, message.reply_markup = (
            text,
            visible,
            parse_mode,
            markup,
        )
        self._chats.record_edit(message, "editMessageText")
        return self._chats.message_json(chat_id, message)

    async def _edit_message_reply_markup(self, params: Params) -> dict[str, Any]:
        chat_id, message = self._chats.editable(params, "edit")
        markup = self._chats.markup(params)
        if markup == message.reply_markup:
            raise self._not_modified()
        message.reply_markup = markup
        self._chats.record_edit(message, "editMessageReplyMarkup")
        return self._chats.message_json(chat_id, message)

    @staticmethod
    def _not_modified() -> BotAPIError:
        return bad_request(
            "message is not modified: specified new message content and reply markup are exactly "
            "the same as a current content and reply markup of the message"
        )

    async def _delete_message(self, params: Params) -> bool:
        chat_id, message_id = params.chat_id(), params.message_id()
        chat = self._chats.chats.get(chat_id)
        message = chat.messages.get(message_id) if chat else None
        user_message = chat.user_messages.get(message_id) if chat else None
        if message is not None and not message.deleted:
            message.deleted = True
        elif user_message is not None and not user_message["deleted"] and chat_id in self._groups.groups:
            self._groups.delete_user_message(chat_id, user_message)  # an admin's right, within 48 hours
        elif user_message is not None and not user_message["deleted"]:
            user_message["deleted"] = True  # bots may delete what a user sent them in private chats
        else:
            raise bad_request("message to delete not found")
        self._chats.pulse.fire()
        return True

    async def _answer_callback_query(self, params: Params) -> bool:
        query = self._chats.callbacks.get(params.text("callback_query_id") or "")
        if query is None or query.answered:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        query.answered = True
        query.answer_text = params.text("text")
        query.show_alert = params.flag("show_alert")
        self._chats.pulse.fire()
        return True

    async def _send_chat_action(self, params: Params) -> bool:
        chat_id, action = params.chat_id(), params.text("action")
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._chats.chat(chat_id).actions.append(action)
        return True

    @staticmethod
    def _commands_key(params: Params) -> str:
        scope = params.obj("scope") or {"type": "default"}
        return json.dumps([scope, params.text("language_code") or ""], sort_keys=True)

    async def _set_my_commands(self, params: Params) -> bool:
        commands = params.obj("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request('field "commands" must be an Array of at most 100 BotCommand')
        for command in commands:
            if not isinstance(command, dict) or not re.fullmatch(
                r"[a-z0-9_]{1,32}", str(command.get("command"))
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise bad_request("command description must be 1-256 characters")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: Params) -> list[dict[str, Any]]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: Params) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _get_chat(self, params: Params) -> dict[str, Any]:
        chat_id = params.chat_id()
        if chat_id not in self._chats.chats and chat_id not in self._chats.users:
            raise bad_request("chat not found")
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
            **self._chats.chat_json(chat_id),
            "accent_color_id": 0,
            "max_reaction_count": 0,
            "accepted_gift_types": no_gifts,
        }

    async def _get_file(self, params: Params) -> dict[str, Any]:
        stored = self._chats.files.get(params.text("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": f"{stored.kind}s/{stored.file_id}",
        }


def _message_text(params: Params) -> tuple[str, str | None, str]:
    """A message's text and parse_mode as given, and the text a user sees (checked as Telegram does)."""
    text, parse_mode = params.text("text") or "", params.text("parse_mode")
    visible = checked_text(
        text, parse_mode, limit=MESSAGE_LIMIT, empty="message text is empty", too_long="message is too long"
    )
    return text, parse_mode, visible
