"""Notices to a clinician about a participant: blocked the bot, stopped, missed check-ins…

Minimum necessary: the alias the program chose and what happened, never message content.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, ScheduledAction, Staff
from bot.messaging import Messenger, say
from bot.services.audit import disclose
from bot.services.scheduling.outbox import Delivered, Skip


async def send_staff_notice(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                            row: ScheduledAction) -> Delivered:
    staff = await session.get(Staff, row.staff_id) if row.staff_id else None
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if staff is None or staff.chat_id is None or participant is None:
        raise Skip("no staff chat to notify (staff member not enrolled yet)")
    notice = str(row.payload.get("notice", "generic"))
    key = f"notice.{notice}" if ctx.texts.has(f"notice.{notice}") else "notice.generic"
    text = ctx.t(key, staff.locale, alias=participant.alias, **{k: v for k, v in row.payload.items() if k != "notice"})
    message = await say(messenger, staff.chat_id, text)
    disclose(session, ctx.clock.now(), participant.id, f"staff:{staff.id}", "notice", notice)
    return Delivered(staff.chat_id, message.message_id)
