"""Buttons and commands of the brief: "Mark attendance" and its roster, `/digest at HH:MM|off`.

The words and the rules are in bot/services/brief/ (attendance.py, digest.py); this is the edge.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Staff
from bot.messaging import Replies
from bot.services.audit import actor_label, audit
from bot.services.brief import attendance
from bot.services.brief.digest import parse_digest_time, plan_digest
from bot.services.staff_time import staff_zone
from bot.telegram.filters import IsStaff

router = Router(name="brief")
router.message.filter(IsStaff())
router.callback_query.filter(IsStaff())


@router.callback_query(F.data.regexp(r"^pres:\d+$"))
async def show_roster(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    outcome = await attendance.open_roster(ctx, session, actor, int((query.data or "").split(":")[1]))
    if outcome.notice:
        replies.notice(outcome.notice)
    if outcome.view is not None:
        replies.text(actor.chat_id or (query.message.chat.id if query.message else 0), *outcome.view)


@router.callback_query(F.data.regexp(r"^pres:\d+:\d+$"))
async def mark(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
               ctx: AppContext) -> None:
    _, occurrence_id, participant_id = (query.data or "").split(":")
    outcome = await attendance.toggle(ctx, session, actor, int(occurrence_id), int(participant_id), ctx.clock.now())
    replies.notice(outcome.notice)
    if outcome.view is not None and isinstance(query.message, Message):
        replies.edit(query.message.chat.id, query.message.message_id, *outcome.view)


@router.message(Command("digest"), F.text.regexp(r"^/digest(@\w+)?\s+\S"))
async def digest_schedule(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                          replies: Replies, ctx: AppContext) -> None:
    """`/digest at 07:30` or `/digest off` (plain `/digest` is the digest now, in staff.py)."""
    now, zone = ctx.clock.now(), staff_zone(ctx, actor)
    words = (command.args or "").strip()
    lowered = words.lower()
    if lowered in ("off", "stop", "no", "apagar", "no más"):
        actor.digest_at = None
        reply = ctx.t("digest_schedule.off", actor.locale)
    else:
        for prefix in ("at ", "a las ", "a la "):
            if lowered.startswith(prefix):
                words = words[len(prefix):]
                break
        at = parse_digest_time(words)
        if at is None:
            replies.text(message.chat.id, ctx.t("digest_schedule.bad_time", actor.locale, text=words) + "\n\n"
                         + ctx.t("digest_schedule.usage", actor.locale, zone=zone.key))
            return
        actor.digest_at = at
        reply = ctx.t("digest_schedule.set", actor.locale, time=at, zone=zone.key)
    await plan_digest(session, ctx, actor, now)
    audit(session, now, actor_label(actor), f"settings:digest:{actor.digest_at or 'off'}")
    replies.text(message.chat.id, reply)
