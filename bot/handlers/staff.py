"""Staff commands: /caseload, /trends ALIAS and /digest (/alerts is in alerts.py).

A clinician sees their own caseload; a lead or admin sees the program. Every view is audited,
and every refusal too; the digest is a disclosure of each participant it names (42 CFR Part 2).
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Participant, Staff
from bot.services.audit import actor_label, audit, disclose
from bot.services.caseload import (
    caseload_rows,
    digest_for,
    find_participant,
    may_see,
    participant_trends,
    visible_participants,
)
from bot.services.caseload_text import caseload_messages, digest_messages, trends_messages
from bot.services.context import AppContext
from bot.telegram.filters import IsStaff
from bot.telegram.replies import Replies

router = Router(name="staff")
router.message.filter(IsStaff())
router.callback_query.filter(IsStaff())

STAFF_COMMANDS = {"caseload", "alerts", "digest", "trends"}
EXAMPLE_ALIAS = "P-101"


def _send(replies: Replies, chat_id: int, messages: list[str]) -> None:
    for text in messages:
        replies.text(chat_id, text)


@router.message(Command("caseload"))
async def caseload_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                           ctx: AppContext) -> None:
    now = ctx.clock.now()
    rows = await caseload_rows(session, actor, now, expire_hours=ctx.settings.checkin.expire_hours)
    audit(session, now, actor_label(actor), "view:caseload")
    _send(replies, message.chat.id, caseload_messages(ctx, rows, actor.locale))


async def _example_alias(session: AsyncSession, staff: Staff) -> str:
    """An alias from this clinician's own caseload for the usage hint, so it can be copied."""
    alias = await session.scalar(select(Participant.alias).where(visible_participants(staff))
                                 .order_by(Participant.alias).limit(1))
    return alias or EXAMPLE_ALIAS


@router.message(Command("trends"))
async def trends_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                         replies: Replies, ctx: AppContext) -> None:
    now, who, locale = ctx.clock.now(), actor_label(actor), actor.locale
    alias = next(iter((command.args or "").split()), "")
    if not alias:
        replies.text(message.chat.id, ctx.t("trends.usage", locale, example=await _example_alias(session, actor)))
        return
    participant = await find_participant(session, alias)
    if participant is None or not await may_see(session, actor, participant):
        # One answer for "no such alias" and "not on your caseload": the reply must not tell a
        # clinician which aliases exist outside their caseload. Both are audited.
        audit(session, now, who, "refused:/trends", participant_id=participant.id if participant else None,
              allowed=False)
        replies.text(message.chat.id, ctx.t("trends.not_on_caseload", locale, alias=alias[:80],
                                            example=await _example_alias(session, actor)))
        return
    trends = await participant_trends(session, participant, now, expire_hours=ctx.settings.checkin.expire_hours)
    audit(session, now, who, "view:trends", participant_id=participant.id)
    _send(replies, message.chat.id, trends_messages(ctx, trends, locale))


@router.message(Command("digest"))
async def digest_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    now, who = ctx.clock.now(), actor_label(actor)
    digest = await digest_for(session, actor, now, expire_hours=ctx.settings.checkin.expire_hours)
    audit(session, now, who, "view:digest")
    for participant_id in sorted(digest.participant_ids):
        disclose(session, now, participant_id, who, "digest")
    _send(replies, message.chat.id, digest_messages(ctx, digest, actor.locale))
