"""What the sender reports, written down: blocked participants and messages that finally failed."""

from __future__ import annotations

import logging

from sqlalchemy import select

from bot.context import AppContext
from bot.db.models import DeliveryFailure, Participant, ParticipantEvent, Staff
from bot.services.scheduling.rows import enqueue

log = logging.getLogger(__name__)


class DatabaseDeliveryRecorder:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def blocked(self, chat_id: int) -> None:
        """403: the participant blocked the bot. Mark them unreachable and tell their clinician once.
        A staff member who blocked the bot is marked too: pages skip them until they write again."""
        now = self.ctx.clock.now()
        async with self.ctx.sessionmaker() as session:
            staff = await session.scalar(select(Staff).where(Staff.chat_id == chat_id))
            if staff is not None:
                if staff.unreachable_at is None:
                    staff.unreachable_at = now
                    await session.commit()
                    log.warning("staff %s blocked the bot; pages skip them until they write again", staff.id)
                return
            participant = await session.scalar(select(Participant).where(Participant.chat_id == chat_id))
            if participant is None or participant.unreachable_at is not None:
                return
            participant.unreachable_at = now
            session.add(ParticipantEvent(participant_id=participant.id, kind="blocked_bot", at=now))
            await enqueue(
                session, kind="staff_notice", key=f"blocked:{participant.id}:{now:%Y%m%dT%H%M%S}",
                due_at=now, participant_id=participant.id, staff_id=participant.therapist_id,
                payload={"notice": "blocked_bot"}, now=now,
            )
            await session.commit()
            log.warning("participant %s blocked the bot; clinician %s will be told", participant.id,
                        participant.therapist_id)
        self.ctx.wake_outbox()

    async def failed(self, chat_id: int | None, method: str, reason: str) -> None:
        async with self.ctx.sessionmaker() as session:
            session.add(DeliveryFailure(at=self.ctx.clock.now(), chat_id=chat_id, method=method, reason=reason[:300]))
            await session.commit()
