"""Who may use a handler. Routers apply these, so a participant can never reach a staff command."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter

from bot.db.models import ENROLLED, Participant, Staff


def is_private(chat: Any) -> bool:
    """A one-to-one chat with the bot. Nothing is answered or assessed anywhere else: in a group
    or channel a person's export, notes or caseload would go to everyone there."""
    return getattr(chat, "type", None) == "private"


class IsStaff(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Staff)


class IsEnrolledParticipant(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Participant) and actor.status in ENROLLED


class IsParticipant(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Participant)
