"""The port through which the core asks Telegram to change a group: implemented in the edge
(bot/telegram/group_admin.py), used only by the outbox senders in actions.py."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.messaging import NotDelivered


class GroupActionFailed(NotDelivered):
    """Telegram refused a group operation; the message (a code and Telegram's words) is safe to log."""

    def __init__(self, reason: str, *, final: bool) -> None:
        super().__init__(reason)
        self.final = final  # trying again will not help (no rights, no such user or message)


class GroupAdmin(Protocol):
    async def approve_join(self, chat_id: int, user_id: int) -> None: ...

    async def decline_join(self, chat_id: int, user_id: int) -> None: ...

    async def kick(self, chat_id: int, user_id: int) -> None:
        """Out of the group, free to be invited again (ban, then unban)."""
        ...

    async def mute(self, chat_id: int, user_id: int, until: datetime | None) -> None:
        """No sending until `until` (None: lift it)."""
        ...

    async def delete_message(self, chat_id: int, message_id: int) -> None: ...

    async def create_invite(self, chat_id: int, name: str, expires: datetime) -> str:
        """A link that makes a join request (the bot decides who gets in); returns the link."""
        ...

    async def revoke_invite(self, chat_id: int, link: str) -> None: ...

    async def create_topic(self, chat_id: int, title: str) -> int:
        """A forum topic (a peer-led thread) in a group with Topics; returns its message_thread_id."""
        ...

    async def close_topic(self, chat_id: int, topic_id: int) -> None: ...
