"""/start: binding an invite link, and the first thing anyone sees."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, ParticipantStatus, Staff
from bot.messaging import Replies
from bot.safety.levels import Assessment
from bot.services import enrollment
from bot.services.audit import actor_label, audit
from bot.telegram.handlers import support
from bot.telegram.handlers.help import send_help
from bot.telegram.handlers.onboarding import Onboarding, show_consent
from bot.telegram.handlers.staff import ask_timezone as ask_staff_timezone

router = Router(name="start")


@router.message(CommandStart(deep_link=True))
async def start_with_link(message: Message, command: CommandObject, actor: Staff | Participant | None,
                          session: AsyncSession, state: FSMContext, replies: Replies, ctx: AppContext,
                          locale: str, assessment: Assessment | None = None) -> None:
    user = message.from_user
    assert user is not None
    now = ctx.clock.now()
    result, who = await enrollment.redeem_invite(
        session, now, command.args or "", user.id, message.chat.id, user.language_code
    )
    if result is enrollment.Redeemed.INVALID:
        if await support.open_support_link(message, command.args or "", session, replies, ctx, locale):
            return  # a support person's invite (#17)
        audit(session, now, actor_label(actor, user.id), "start:invalid_link", allowed=False)
        if assessment is not None and assessment.flagged:
            return  # words typed after /start, not a link: the crisis reply stands alone
        replies.text(message.chat.id, ctx.t("start.invalid_link", locale))
        return
    if result is enrollment.Redeemed.ALREADY_ENROLLED:
        replies.text(message.chat.id, ctx.t("start.already_enrolled", locale))
        return
    if isinstance(who, Staff):
        ctx.directory.remember(user.id, who)
        audit(session, now, actor_label(who), "start:staff_enrolled")
        # One message: the welcome and the time zone their alerts and lists will use.
        await ask_staff_timezone(replies, ctx, who, state, message.chat.id,
                                 before=ctx.t("staff.welcome", who.locale, alias=who.alias, role=who.role))
        return
    assert isinstance(who, Participant)
    ctx.directory.remember(user.id, who)
    audit(session, now, actor_label(who), "start:participant_bound", participant_id=who.id)
    await state.set_state(Onboarding.consent)
    show_consent(replies, ctx, who)


@router.message(CommandStart())
async def start_plain(message: Message, actor: Staff | Participant | None, state: FSMContext,
                      replies: Replies, ctx: AppContext, locale: str) -> None:
    if actor is None:
        replies.text(message.chat.id, ctx.t("unknown.hint", locale))
    elif isinstance(actor, Participant) and actor.status == ParticipantStatus.CONSENT_PENDING:
        await state.set_state(Onboarding.consent)
        show_consent(replies, ctx, actor)
    else:
        send_help(replies, ctx, actor, message.chat.id)
