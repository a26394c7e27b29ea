"""The last router: whatever no other handler took.

A participant trying a staff command (or the reverse) is refused and audited; an unknown person
gets the enrollment hint and nothing else; a participant's own note is kept for their care team.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import InboundMessage, Participant, ParticipantStatus, Staff
from bot.messaging import Replies
from bot.safety.levels import Assessment
from bot.services.audit import actor_label, audit
from bot.services.inbound import keep_note
from bot.telegram.commands import PARTICIPANT_COMMANDS, STAFF_COMMANDS
from bot.telegram.filters import ENROLLED
from bot.telegram.handlers.help import send_help

router = Router(name="fallback")


def _command_name(text: str) -> str | None:
    if not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""


@router.message(F.text)
async def any_text(message: Message, actor: Staff | Participant | None, session: AsyncSession,
                   replies: Replies, ctx: AppContext, locale: str, stored_message: InboundMessage | None = None,
                   assessment: Assessment | None = None) -> None:
    now = ctx.clock.now()
    text = message.text or ""
    command = _command_name(text)
    who = actor_label(actor, message.from_user.id if message.from_user else None)
    if actor is None:
        if command is not None:
            audit(session, now, who, f"refused:/{command}"[:80], allowed=False)
        replies.text(message.chat.id, ctx.t("unknown.hint", locale))
        return
    if command is not None:
        if isinstance(actor, Participant) and command in STAFF_COMMANDS - PARTICIPANT_COMMANDS:
            audit(session, now, who, f"refused:/{command}", participant_id=actor.id, allowed=False)
            replies.text(message.chat.id, ctx.t("refused.staff_only", locale))
        elif isinstance(actor, Staff) and command in PARTICIPANT_COMMANDS - STAFF_COMMANDS:
            audit(session, now, who, f"refused:/{command}", allowed=False)
            replies.text(message.chat.id, ctx.t("refused.participant_only", locale))
        elif isinstance(actor, Participant) and command in PARTICIPANT_COMMANDS:
            # Not enrolled (any more): say why, not "finish setting up" to someone who has left.
            key = {ParticipantStatus.OPTED_OUT: "stopped.hint", ParticipantStatus.DISCHARGED: "discharge.hint"}.get(
                ParticipantStatus(actor.status), "common.finish_enrollment_first")
            replies.text(message.chat.id, ctx.t(key, locale))
        else:
            replies.text(message.chat.id, ctx.t("common.unknown_command", locale))
        return
    if isinstance(actor, Staff):
        send_help(replies, ctx, actor, message.chat.id)
        return
    if actor.status == ParticipantStatus.OPTED_OUT:
        replies.text(message.chat.id, ctx.t("stopped.hint", locale))
        return
    if actor.status == ParticipantStatus.DISCHARGED:
        replies.text(message.chat.id, ctx.t("discharge.hint", locale))
        return
    if actor.status not in ENROLLED:
        send_help(replies, ctx, actor, message.chat.id)
        return
    if stored_message is None:  # a flagged message was already stored with its escalation
        await keep_note(session, actor, text=text, telegram_message_id=message.message_id, received_at=now)
    if assessment is not None and assessment.flagged:
        return  # the safety gate already answered with the crisis or supportive reply
    replies.text(message.chat.id, ctx.t("note.saved", locale))


@router.message()
async def any_other_message(message: Message, actor: Staff | Participant | None, replies: Replies,
                            ctx: AppContext, locale: str, assessment: Assessment | None = None) -> None:
    # Photos, stickers, voice: we cannot assess them, so say so and point to help.
    if assessment is not None and assessment.flagged:
        return  # a caption the safety gate flagged: it already answered with the crisis reply
    if actor is None:
        replies.text(message.chat.id, ctx.t("unknown.hint", locale))
        return
    replies.text(message.chat.id, ctx.t("common.text_only", locale))


@router.callback_query()
async def any_button(query: CallbackQuery, actor: Staff | Participant | None, session: AsyncSession,
                     replies: Replies, ctx: AppContext, locale: str) -> None:
    # A button this person may not use, or one from an old message: refuse and record it.
    who = actor_label(actor, query.from_user.id)
    audit(session, ctx.clock.now(), who, f"refused:button:{(query.data or '')[:20]}", allowed=False)
    replies.notice(ctx.t("common.button_expired", locale))
