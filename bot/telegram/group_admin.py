"""The `GroupAdmin` port (bot/services/groups/port.py) for Telegram: the group operations the core
asks for, as Bot API calls through the rate-limited sender, and Telegram's errors as the core's."""

from __future__ import annotations

from datetime import datetime

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import ChatPermissions

from bot.services.groups.port import GroupActionFailed

_SENDING = ("can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos", "can_send_videos",
            "can_send_video_notes", "can_send_voice_notes", "can_send_polls", "can_send_other_messages",
            "can_add_web_page_previews", "can_react_to_messages")


def _failed(exc: TelegramAPIError) -> GroupActionFailed:
    # 400 (no such user, request already handled, message too old) and 403 (not an admin any
    # more, removed from the group) will not change by trying again; the rest may.
    final = isinstance(exc, TelegramBadRequest | TelegramForbiddenError)
    return GroupActionFailed(f"{type(exc).__name__}: {exc.message[:200]}", final=final)


class TelegramGroupAdmin:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def approve_join(self, chat_id: int, user_id: int) -> None:
        try:
            await self.bot.approve_chat_join_request(chat_id, user_id)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc

    async def decline_join(self, chat_id: int, user_id: int) -> None:
        try:
            await self.bot.decline_chat_join_request(chat_id, user_id)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc

    async def kick(self, chat_id: int, user_id: int) -> None:
        # A ban, then lifting it: out of the group now, and a new link of their own works later.
        try:
            await self.bot.ban_chat_member(chat_id, user_id)
            await self.bot.unban_chat_member(chat_id, user_id, only_if_banned=True)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc

    async def mute(self, chat_id: int, user_id: int, until: datetime | None) -> None:
        allowed = until is None
        permissions = ChatPermissions(**dict.fromkeys(_SENDING, allowed))
        try:
            await self.bot.restrict_chat_member(chat_id, user_id, permissions, use_independent_chat_permissions=True,
                                                until_date=until)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc

    async def delete_message(self, chat_id: int, message_id: int) -> None:
        try:
            await self.bot.delete_message(chat_id, message_id)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc

    async def create_invite(self, chat_id: int, name: str, expires: datetime) -> str:
        # A join request link (member_limit cannot be combined with it): the bot approves only the
        # person it was made for, and revokes it once used, so it is single-use in effect.
        try:
            link = await self.bot.create_chat_invite_link(chat_id, name=name[:32], expire_date=expires,
                                                          creates_join_request=True)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc
        return link.invite_link

    async def revoke_invite(self, chat_id: int, link: str) -> None:
        try:
            await self.bot.revoke_chat_invite_link(chat_id, link)
        except TelegramAPIError as exc:
            raise _failed(exc) from exc

    async def create_topic(self, chat_id: int, title: str) -> int:
        try:
            topic = await self.bot.create_forum_topic(chat_id, title[:128])
        except TelegramAPIError as exc:
            raise _failed(exc) from exc
        return topic.message_thread_id

    async def close_topic(self, chat_id: int, topic_id: int) -> None:
        try:
            await self.bot.close_forum_topic(chat_id, topic_id)
        except TelegramAPIError as exc:
            if "TOPIC_NOT_MODIFIED" in exc.message:  # closed already (by hand in Telegram)
                return
            raise _failed(exc) from exc
