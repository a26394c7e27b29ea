"""/help: what this person can do, by role."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.context import AppContext
from bot.db.models import Participant, Staff
from bot.messaging import Replies
from bot.telegram.filters import ENROLLED

router = Router(name="help")


def send_help(replies: Replies, ctx: AppContext, actor: Staff | Participant | None, chat_id: int) -> None:
    if isinstance(actor, Staff):
        replies.text(chat_id, ctx.t("help.staff", actor.locale))
    elif isinstance(actor, Participant) and actor.status in ENROLLED:
        replies.text(chat_id, ctx.t("help.participant", actor.locale))
    elif isinstance(actor, Participant):
        replies.text(chat_id, ctx.t("help.onboarding", actor.locale))
    else:
        replies.text(chat_id, ctx.t("unknown.hint", ctx.settings.program.default_locale))


@router.message(Command("help"))
async def help_command(message: Message, actor: Staff | Participant | None, replies: Replies,
                       ctx: AppContext) -> None:
    send_help(replies, ctx, actor, message.chat.id)
