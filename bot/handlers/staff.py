"""Staff commands: /caseload (and, with the distress work, /alerts). Every view is audited."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Staff
from bot.services.audit import actor_label, audit
from bot.services.caseload import caseload_rows
from bot.services.context import AppContext
from bot.telegram.filters import IsStaff
from bot.telegram.replies import Replies

router = Router(name="staff")
router.message.filter(IsStaff())
router.callback_query.filter(IsStaff())

STAFF_COMMANDS = {"caseload", "alerts", "digest", "trends"}


@router.message(Command("caseload"))
async def caseload_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                           ctx: AppContext) -> None:
    now = ctx.clock.now()
    rows = await caseload_rows(session, actor)
    audit(session, now, actor_label(actor), "view:caseload")
    if not rows:
        replies.text(message.chat.id, ctx.t("caseload.empty", actor.locale))
        return
    lines = [ctx.t("caseload.title", actor.locale, count=len(rows))]
    for row in rows:
        lines.append(ctx.t("caseload.row", actor.locale, alias=row.alias, status=row.status,
                           open_flags=row.open_flags))
    replies.text(message.chat.id, "\n".join(lines))
