"""Who may use a handler. Routers apply these, so a participant can never reach a staff command."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter

from bot.db.models import Participant, ParticipantStatus, Staff

# Participants who finished enrollment: they may use the participant commands (alumni too: they
# answer their check-ins, and may pause, stop or export like anyone).
ENROLLED = {ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED, ParticipantStatus.ALUMNI}


class IsStaff(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Staff)


class IsEnrolledParticipant(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Participant) and actor.status in ENROLLED


class IsParticipant(Filter):
    async def __call__(self, event: Any, actor: Any = None) -> bool:
        return isinstance(actor, Participant)
