"""Who may use a handler. Routers apply these, so a participant can never reach a staff command."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter

from bot.db.models import ENROLLED, Participant, Staff


class IsStaff(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Staff)


class IsEnrolledParticipant(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Participant) and actor.status in ENROLLED


class IsParticipant(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Participant)
