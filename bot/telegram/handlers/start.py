"""/start: binding an invite link, and the first thing anyone sees.

A support person's /start is not handled here but by their own router (handlers/support.py:
their help, their consent screen, "already connected"), whichever of the two routers the
dispatcher asks first: a current support person's /start always, a former one's bare /start (a
former one may open a new link of any kind, which is handled here)."""

from __future__ import annotations

from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, ParticipantStatus, Staff
from bot.db.support_models import BOUND, SupportPerson
from bot.messaging import Replies
from bot.safety.levels import Assessment
from bot.services import enrollment
from bot.services.audit import actor_label, audit
from bot.services.support.service import find_by_telegram
from bot.telegram.handlers import support
from bot.telegram.handlers.help import send_help
from bot.telegram.handlers.onboarding import Onboarding, show_consent
from bot.telegram.handlers.staff import ask_timezone as ask_staff_timezone

router = Router(name="start")


async def _support_person(session: AsyncSession, message: Message, actor: Staff | Participant | None,
                          known: SupportPerson | None) -> SupportPerson | None:
    """The support person writing (neither staff nor a participant), if it is one."""
    if actor is not None or message.from_user is None:
        return None
    return known or await find_by_telegram(session, message.from_user.id)


@router.message(CommandStart(deep_link=True))
async def start_with_link(message: Message, command: CommandObject, actor: Staff | Participant | None,
                          session: AsyncSession, state: FSMContext, replies: Replies, ctx: AppContext,
                          locale: str, assessment: Assessment | None = None,
                          support_person: SupportPerson | None = None) -> None:
    user = message.from_user
    assert user is not None
    person = await _support_person(session, message, actor, support_person)
    if person is not None and person.status in BOUND:
        raise SkipHandler  # a current support person's (module docstring)
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
                      replies: Replies, ctx: AppContext, locale: str, session: AsyncSession,
                      support_person: SupportPerson | None = None) -> None:
    if await _support_person(session, message, actor, support_person) is not None:
        raise SkipHandler  # a support person's, current or former (module docstring)
    if actor is None:
        replies.text(message.chat.id, ctx.t("unknown.hint", locale))
    elif isinstance(actor, Participant) and actor.status == ParticipantStatus.CONSENT_PENDING:
        await state.set_state(Onboarding.consent)
        show_consent(replies, ctx, actor)
    else:
        send_help(replies, ctx, actor, message.chat.id)
