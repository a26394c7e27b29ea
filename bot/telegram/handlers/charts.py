"""/trend ALIAS for staff and /mytrend for a participant: the chart as a PNG.

Staff see a participant on their caseload (bot/services/visibility.py); anyone else asking is
refused with the same words whether the alias exists or not, and the refusal is audited. Every
chart sent is a disclosure (recipient and time), to a clinician or to the participant themselves.
The chart is drawn in a worker thread (bot/services/charts/service.py), never on the event loop.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, Staff
from bot.messaging import Replies
from bot.services.audit import actor_label, audit
from bot.services.caseload import find_participant
from bot.services.charts import chart_filename, disclose_chart, trend_chart
from bot.services.visibility import example_alias, may_see
from bot.telegram.filters import IsEnrolledParticipant, IsStaff

router = Router(name="charts")



@router.message(Command("trend"), IsStaff())
async def trend_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                        replies: Replies, ctx: AppContext) -> None:
    now, who, locale = ctx.clock.now(), actor_label(actor), actor.locale
    alias = next(iter((command.args or "").split()), "")
    if not alias:
        replies.text(message.chat.id, ctx.t("chart.usage", locale, example=await example_alias(session, actor)))
        return
    participant = await find_participant(session, alias)
    if participant is None or not await may_see(session, actor, participant):
        # One answer for "no such alias" and "not on your caseload": the reply must not tell a
        # clinician which aliases exist outside their caseload. Both are audited.
        audit(session, now, who, "refused:/trend", participant_id=participant.id if participant else None,
              allowed=False)
        replies.text(message.chat.id, ctx.t("chart.not_on_caseload", locale, alias=alias[:80],
                                            example=await example_alias(session, actor)))
        return
    png, caption = await trend_chart(ctx, session, participant, now, locale)
    audit(session, now, who, "view:trend", participant_id=participant.id)
    disclose_chart(session, now, participant, who)
    replies.photo(message.chat.id, chart_filename(now), png, caption)


@router.message(Command("mytrend"), IsEnrolledParticipant())
async def mytrend_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                          ctx: AppContext) -> None:
    locale = actor.locale
    now, who = ctx.clock.now(), actor_label(actor)
    png, caption = await trend_chart(ctx, session, actor, now, locale, own=True)
    audit(session, now, who, "view:mytrend", participant_id=actor.id)
    disclose_chart(session, now, actor, who)
    replies.photo(message.chat.id, chart_filename(now), png, caption)


