"""What the sender reports, written down: blocked participants and messages that finally failed."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import DeliveryFailure, Participant, ParticipantEvent, Staff
from bot.services.scheduling.hooks import participant_schedule_changed
from bot.services.scheduling.rows import enqueue

log = logging.getLogger(__name__)


async def wrote_again(session: AsyncSession, ctx: AppContext, person: Participant | Staff) -> None:
    """Someone marked unreachable (Telegram said they blocked the bot) writes to the bot in private
    again: they unblocked it. Staff are paged again; a participant's check-ins, reminders and reads
    are planned again from now (nothing missed meanwhile is sent late), their clinician is told, and
    their events show when they came back. Called only for a private message or button press (a
    post in their cohort's group says nothing about the private chat). A replanning that fails is
    logged and left to the planners' next look: it must not cost the update, which may be a crisis."""
    if person.unreachable_at is None:
        return
    person.unreachable_at = None
    if not isinstance(person, Participant):
        return
    now = ctx.clock.now()
    session.add(ParticipantEvent(participant_id=person.id, kind="unblocked_bot", at=now))
    await enqueue(session, kind="staff_notice", key=f"unblocked:{person.id}:{now:%Y%m%dT%H%M%S}", due_at=now,
                  participant_id=person.id, staff_id=person.therapist_id, payload={"notice": "unblocked_bot"},
                  now=now)
    try:
        async with session.begin_nested():
            await participant_schedule_changed(session, ctx, person)
    except Exception:
        log.exception("participant %s wrote again after blocking the bot; replanning failed (the planners "
                      "plan them at their next look)", person.id)
    else:
        log.info("participant %s wrote again after blocking the bot; their schedule resumes", person.id)


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
