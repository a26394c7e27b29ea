"""Support persons (#17), both sides. Thin: everything is in bot/services/support.

The participant: /support lists their support persons (what each sees), invites one (who → what is
shared, nothing by default → their consent → a single-use link to forward), changes what is shared
and stops it (at once; the support person is told plainly, without detail). A typed name passed the
safety gate like any message; a flagged one is never taken as a name.

The support person (not staff, not a participant: found by their Telegram account, here and in
the safety gate's FlagRecorder, which stores and escalates their flagged words): their own consent
screen after the link (English or Spanish), then /help, /family (the family reads), /stop, the
weekly check-in's buttons and optional line. Every other command is refused and audited; they
never see anything of the participant's but the weekly line the participant chose to share.
Everything else they type gets a short reply with where help is (the gate already sent the crisis
reply to a flagged message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, CommandStart, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, Staff
from bot.db.support_models import SHAREABLE, SupportCheckin, SupportPerson, SupportStatus
from bot.messaging import Replies, keyboard
from bot.safety.levels import Assessment
from bot.services.audit import actor_label, audit
from bot.services.support import checkins, service, views
from bot.services.support.family import family_library, render_read
from bot.telegram.commands import SUPPORT_PERSON_COMMANDS
from bot.telegram.filters import IsEnrolledParticipant

router = Router(name="support")
# A typed answer (a name, a check-in's line) is taken this long after the question.
ANSWER_WINDOW = timedelta(minutes=30)


class SupportInvite(StatesGroup):
    name = State()  # who: typed
    shares = State()  # what is shared: buttons
    consent = State()  # the participant's consent: a button


class SupportChange(StatesGroup):
    shares = State()


class SupportCheckinNote(StatesGroup):
    note = State()  # the weekly check-in's optional line


def _program(ctx: AppContext, locale: str) -> str:
    return ctx.settings.program.name or ctx.t("consent.program_unnamed", locale)


async def _fresh(state: FSMContext, ctx: AppContext) -> bool:
    asked = (await state.get_data()).get("asked_at")
    return bool(asked) and ctx.clock.now() - datetime.fromisoformat(str(asked)) <= ANSWER_WINDOW


# --- who is writing: a support person? -------------------------------------------------------------------

class SupportPersonLookup(BaseMiddleware):
    """Neither staff nor a participant: perhaps a support person (the FlagRecorder may have looked
    already). Their language, and the safety gate's memory of them, follow their record."""

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                      event: TelegramObject, data: dict[str, Any]) -> Any:
        user = data.get("event_from_user")
        if data.get("actor") is None and user is not None:
            if "support_person" not in data:
                data["support_person"] = await service.find_by_telegram(data["session"], user.id)
            person: SupportPerson | None = data["support_person"]
            if person is not None:
                data["locale"] = person.locale
                data["ctx"].directory.remember(user.id, person)
                if person.unreachable_at is not None:
                    person.unreachable_at = None  # they write again: they unblocked the bot
        return await handler(event, data)


class IsSupportPerson(Filter):
    async def __call__(self, event: Any, support_person: Any = None) -> bool:
        return isinstance(support_person, SupportPerson)


supporters = Router(name="support-persons")
supporters.message.outer_middleware(SupportPersonLookup())
supporters.callback_query.outer_middleware(SupportPersonLookup())
supporters.message.filter(IsSupportPerson())
supporters.callback_query.filter(IsSupportPerson())

participants = Router(name="support-participants")
participants.message.filter(IsEnrolledParticipant())
participants.callback_query.filter(IsEnrolledParticipant())

others = Router(name="support-others")
router.include_routers(supporters, participants, others)


# --- opening a support link (called by start.py when the link is no participant's or staff's) --------------

def show_consent(replies: Replies, ctx: AppContext, person: SupportPerson, shares: frozenset[str]) -> None:
    locale = person.locale
    replies.text(person.chat_id or 0, ctx.t("support.consent", locale, program=_program(ctx, locale),
                                            shares=views.shares_words(ctx, shares, locale)),
                 views.consent_keyboard(ctx, locale))


async def open_support_link(message: Message, token: str, session: AsyncSession, replies: Replies,
                            ctx: AppContext, locale: str) -> bool:
    """/start with a support invite: bind the account and show the consent screen. False when the
    token is no valid support link (the caller says so as for any link)."""
    user = message.from_user
    if user is None or not token:
        return False
    opened = await service.redeem(session, ctx.clock.now(), ctx.settings, token, user.id, message.chat.id,
                                  user.language_code)
    if opened.result is service.Opened.ALREADY:
        replies.text(message.chat.id, ctx.t("support.already", locale))
        return True
    if opened.person is None:
        return False
    ctx.directory.remember(user.id, opened.person)
    show_consent(replies, ctx, opened.person, await service.shares_of(session, opened.person.id))
    return True


# --- the support person -----------------------------------------------------------------------------------

@supporters.message(CommandStart())
async def start_again(message: Message, command: CommandObject, support_person: SupportPerson, session: AsyncSession,
                      replies: Replies, ctx: AppContext) -> None:
    if support_person.status not in (SupportStatus.ACTIVE, SupportStatus.CONSENT_PENDING):
        if command.args:
            raise SkipHandler  # a former support person may open a new link of any kind (start.py)
        replies.text(message.chat.id, ctx.t("support.former", support_person.locale))
        return
    if support_person.status == SupportStatus.CONSENT_PENDING:
        show_consent(replies, ctx, support_person, await service.shares_of(session, support_person.id))
        return
    if command.args:
        replies.text(message.chat.id, ctx.t("support.already", support_person.locale))
        return
    replies.text(message.chat.id, ctx.t("support.help", support_person.locale))


@supporters.callback_query(F.data.startswith(views.LANGUAGE))
async def switch_language(query: CallbackQuery, support_person: SupportPerson, session: AsyncSession,
                          replies: Replies, ctx: AppContext) -> None:
    locale = (query.data or "")[len(views.LANGUAGE):]
    if support_person.status != SupportStatus.CONSENT_PENDING or locale not in ("en", "es"):
        replies.notice(ctx.t("common.button_expired", support_person.locale))
        return
    support_person.locale = locale
    ctx.directory.remember(query.from_user.id, support_person)
    if query.message:
        shares = await service.shares_of(session, support_person.id)
        replies.edit(support_person.chat_id or 0, query.message.message_id,
                     ctx.t("support.consent", locale, program=_program(ctx, locale),
                           shares=views.shares_words(ctx, shares, locale)),
                     views.consent_keyboard(ctx, locale))


def _family_menu(ctx: AppContext, locale: str) -> Any:
    reads = family_library(ctx).reads(locale)
    return views.family_keyboard(ctx, [(r.id, r.title) for r in reads]) if reads else None


@supporters.callback_query(F.data.in_({views.AGREE, views.DECLINE}))
async def consent_answer(query: CallbackQuery, support_person: SupportPerson, session: AsyncSession,
                         replies: Replies, ctx: AppContext) -> None:
    locale, chat = support_person.locale, support_person.chat_id or 0
    if support_person.status != SupportStatus.CONSENT_PENDING:
        replies.notice(ctx.t("common.button_expired", locale))
        return
    now = ctx.clock.now()
    if query.data == views.DECLINE:
        await service.decline(session, now, support_person)
        ctx.directory.forget(query.from_user.id)
        replies.text(chat, ctx.t("support.declined", locale))
        replies.outbox_due = True
        return
    await service.agree(session, now, support_person)
    await checkins.plan_week(session, support_person, now, ctx.settings.support)
    replies.text(chat, ctx.t("support.welcome", locale), _family_menu(ctx, locale))
    replies.outbox_due = True


@supporters.message(Command("help"))
async def support_help(message: Message, support_person: SupportPerson, replies: Replies, ctx: AppContext) -> None:
    key = {SupportStatus.ACTIVE: "support.help", SupportStatus.CONSENT_PENDING: "support.finish_first"}.get(
        SupportStatus(support_person.status), "support.former")
    replies.text(message.chat.id, ctx.t(key, support_person.locale))


@supporters.message(F.text, lambda m, support_person: support_person.status == SupportStatus.CONSENT_PENDING)
async def consent_first(message: Message, support_person: SupportPerson, session: AsyncSession,
                        replies: Replies, ctx: AppContext, assessment: Assessment | None = None) -> None:
    if assessment is not None and assessment.flagged:
        return  # the safety gate answered; the FlagRecorder kept it for the care team
    replies.text(message.chat.id, ctx.t("support.finish_first", support_person.locale))
    show_consent(replies, ctx, support_person, await service.shares_of(session, support_person.id))


@supporters.message(lambda m, support_person: support_person.status in (SupportStatus.REVOKED, SupportStatus.LEFT))
async def former(message: Message, support_person: SupportPerson, session: AsyncSession, replies: Replies,
                 ctx: AppContext, assessment: Assessment | None = None) -> None:
    """Revoked or left: nobody reads this chat any more (a flagged message still reached the
    participant's care team, through the FlagRecorder)."""
    if (message.text or "").startswith("/"):
        audit(session, ctx.clock.now(), f"support:{support_person.id}", "refused:former_support", allowed=False)
    if assessment is not None and assessment.flagged:
        return
    replies.text(message.chat.id, ctx.t("support.former", support_person.locale))


@supporters.message(Command("family"))
async def family_command(message: Message, support_person: SupportPerson, replies: Replies, ctx: AppContext) -> None:
    menu = _family_menu(ctx, support_person.locale)
    replies.text(message.chat.id, ctx.t("support.family_title" if menu else "support.family_none",
                                        support_person.locale), menu)


@supporters.callback_query(F.data.startswith(views.READ))
async def family_read(query: CallbackQuery, support_person: SupportPerson, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    locale = support_person.locale
    read = family_library(ctx).get((query.data or "")[len(views.READ):], locale)
    if read is None or support_person.status != SupportStatus.ACTIVE:
        replies.notice(ctx.t("common.button_expired", locale))
        return
    audit(session, ctx.clock.now(), f"support:{support_person.id}", f"family_read:{read.id}"[:80])
    for text in render_read(ctx, read, locale):
        replies.text(support_person.chat_id or 0, text)


@supporters.message(Command("stop"))
async def stop_command(message: Message, support_person: SupportPerson, replies: Replies, ctx: AppContext) -> None:
    locale = support_person.locale
    replies.text(message.chat.id, ctx.t("support.stop_ask", locale),
                 keyboard([[(ctx.t("support.stop_yes", locale), views.LEAVE_YES),
                            (ctx.t("support.stop_no", locale), views.LEAVE_NO)]]))


@supporters.callback_query(F.data.in_({views.LEAVE_YES, views.LEAVE_NO}))
async def stop_answer(query: CallbackQuery, support_person: SupportPerson, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    locale, chat = support_person.locale, support_person.chat_id or 0
    if support_person.status != SupportStatus.ACTIVE:
        replies.notice(ctx.t("common.button_expired", locale))
        return
    if query.data == views.LEAVE_NO:
        replies.text(chat, ctx.t("support.stop_kept", locale))
        return
    await service.leave(session, ctx.clock.now(), support_person)
    replies.text(chat, ctx.t("support.stopped", locale))
    replies.outbox_due = True


@supporters.callback_query(F.data.startswith(views.SCORE), F.data != views.SKIP_NOTE)
async def checkin_score(query: CallbackQuery, support_person: SupportPerson, session: AsyncSession,
                        state: FSMContext, replies: Replies, ctx: AppContext) -> None:
    locale, chat = support_person.locale, support_person.chat_id or 0
    try:
        checkin_id, score = (int(part) for part in (query.data or "")[len(views.SCORE):].split(":"))
    except ValueError:
        checkin_id, score = 0, -1
    checkin = await session.get(SupportCheckin, checkin_id)
    now = ctx.clock.now()
    if (checkin is None or checkin.support_person_id != support_person.id or score not in checkins.SCORES
            or support_person.status != SupportStatus.ACTIVE or now - checkin.asked_at > timedelta(days=6)):
        replies.notice(ctx.t("support.checkin_expired", locale))
        return
    await checkins.record_score(session, support_person, checkin, score, now,
                                low_score=ctx.settings.support.low_score)
    await state.set_state(SupportCheckinNote.note)
    await state.set_data({"checkin_id": checkin.id, "asked_at": now.isoformat()})
    replies.text(chat, ctx.t("support.ask_note", locale),
                 keyboard([[(ctx.t("support.skip_note", locale), views.SKIP_NOTE)]]))
    replies.outbox_due = True  # a low week tells the clinician now


async def _checkin_done(checkin: SupportCheckin | None, support_person: SupportPerson, replies: Replies,
                        ctx: AppContext) -> None:
    hard = checkin is not None and checkin.score is not None and checkin.score <= ctx.settings.support.low_score
    replies.text(support_person.chat_id or 0,
                 ctx.t("support.checkin_hard" if hard else "support.checkin_done", support_person.locale))


@supporters.callback_query(F.data == views.SKIP_NOTE)
async def skip_note(query: CallbackQuery, support_person: SupportPerson, session: AsyncSession, state: FSMContext,
                    replies: Replies, ctx: AppContext) -> None:
    if await state.get_state() != SupportCheckinNote.note.state:
        replies.notice(ctx.t("common.button_expired", support_person.locale))
        return
    checkin = await session.get(SupportCheckin, int((await state.get_data()).get("checkin_id", 0)))
    await state.clear()
    await _checkin_done(checkin, support_person, replies, ctx)


@supporters.message(StateFilter(SupportCheckinNote.note), F.text, ~F.text.startswith("/"))
async def typed_note(message: Message, support_person: SupportPerson, session: AsyncSession, state: FSMContext,
                     replies: Replies, ctx: AppContext, assessment: Assessment | None = None) -> None:
    fresh = await _fresh(state, ctx)
    checkin = await session.get(SupportCheckin, int((await state.get_data()).get("checkin_id", 0)))
    await state.clear()
    if not fresh or checkin is None or checkin.support_person_id != support_person.id:
        raise SkipHandler  # an ordinary message again
    checkins.record_note(checkin, message.text or "", int(assessment.level) if assessment else 0)
    if assessment is not None and assessment.flagged:
        return  # the safety gate answered, and the care team hears of it (FlagRecorder)
    await _checkin_done(checkin, support_person, replies, ctx)


@supporters.message(F.text.startswith("/"))
async def refused(message: Message, support_person: SupportPerson, session: AsyncSession, replies: Replies,
                  ctx: AppContext) -> None:
    """Any other command: not for support persons (participants' and staff commands above all)."""
    command = (message.text or "/")[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()
    audit(session, ctx.clock.now(), f"support:{support_person.id}", f"refused:/{command}"[:80],
          participant_id=support_person.participant_id, allowed=False)
    replies.text(message.chat.id, ctx.t("support.refused", support_person.locale))


@supporters.message()
async def anything_else(message: Message, support_person: SupportPerson, replies: Replies, ctx: AppContext,
                        assessment: Assessment | None = None) -> None:
    """Their own words: a flagged one was answered by the gate and reached the care team; any
    other is not kept, and they are told where help is."""
    if assessment is not None and assessment.flagged:
        return
    replies.text(message.chat.id, ctx.t("support.text_reply", support_person.locale))


# --- the participant ---------------------------------------------------------------------------------------

async def _overview(session: AsyncSession, ctx: AppContext, actor: Participant) -> tuple[str, Any]:
    people = await service.supports_of(session, actor.id)
    pairs = [(p, await service.shares_of(session, p.id)) for p in people]
    return views.overview(ctx, actor.locale, pairs, len(people) < ctx.settings.support.max_per_participant)


@participants.message(Command("support"))
async def support_command(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                          replies: Replies, ctx: AppContext) -> None:
    if await state.get_state() in {s.state for s in (*SupportInvite.__states__, *SupportChange.__states__)}:
        await state.clear()
    audit(session, ctx.clock.now(), actor_label(actor), "support_view", participant_id=actor.id)
    text, kb = await _overview(session, ctx, actor)
    replies.text(message.chat.id, text, kb)


@participants.callback_query(F.data == views.INVITE)
async def invite_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                        replies: Replies, ctx: AppContext) -> None:
    if len(await service.supports_of(session, actor.id)) >= ctx.settings.support.max_per_participant:
        replies.text(actor.chat_id or 0, ctx.t("support.too_many", actor.locale,
                                               count=ctx.settings.support.max_per_participant))
        return
    await state.set_state(SupportInvite.name)
    await state.set_data({"asked_at": ctx.clock.now().isoformat()})
    replies.text(actor.chat_id or 0, ctx.t("support.ask_name", actor.locale))


@participants.message(StateFilter(SupportInvite.name), F.text, ~F.text.startswith("/"))
async def typed_name(message: Message, actor: Participant, state: FSMContext, replies: Replies, ctx: AppContext,
                     assessment: Assessment | None = None) -> None:
    if (assessment is not None and assessment.flagged) or not await _fresh(state, ctx):
        await state.clear()
        raise SkipHandler  # words in distress are never a name: an ordinary (flagged) message
    name = service.clean_name(message.text or "")
    if name is None:
        replies.text(message.chat.id, ctx.t("support.bad_name", actor.locale, max=service.NAME_MAX))
        return
    await state.set_state(SupportInvite.shares)
    await state.update_data(name=name, items=[])
    replies.text(message.chat.id, ctx.t("support.ask_shares", actor.locale, name=name),
                 views.share_keyboard(ctx, frozenset(), actor.locale, done=views.SHARE_DONE))


async def _own(session: AsyncSession, actor: Participant, raw: str) -> SupportPerson | None:
    """The participant's own current support person with this id, or None (anyone else's is refused)."""
    try:
        person = await session.get(SupportPerson, int(raw))
    except ValueError:
        return None
    return person if person is not None and person.participant_id == actor.id and views.is_current(person) else None


@participants.callback_query(F.data.startswith(views.SHARE_TOGGLE))
async def toggle_share(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                       replies: Replies, ctx: AppContext) -> None:
    item, _, person_id = (query.data or "")[len(views.SHARE_TOGGLE):].partition(":")
    expected = SupportChange.shares.state if person_id else SupportInvite.shares.state
    data = await state.get_data()
    if (item not in SHAREABLE or await state.get_state() != expected
            or (person_id and str(data.get("person_id")) != person_id)):
        replies.notice(ctx.t("support.expired", actor.locale))
        return
    items = set(data.get("items", [])) ^ {item}
    await state.update_data(items=sorted(items))
    done = f"{views.SAVE}{person_id}" if person_id else views.SHARE_DONE
    if query.message:
        replies.edit(actor.chat_id or 0, query.message.message_id,
                     ctx.t("support.ask_shares", actor.locale, name=data.get("name", "")),
                     views.share_keyboard(ctx, frozenset(items), actor.locale, done=done,
                                          suffix=f":{person_id}" if person_id else ""))


@participants.callback_query(F.data == views.SHARE_DONE)
async def shares_done(query: CallbackQuery, actor: Participant, state: FSMContext, replies: Replies,
                      ctx: AppContext) -> None:
    if await state.get_state() != SupportInvite.shares.state:
        replies.notice(ctx.t("support.expired", actor.locale))
        return
    data = await state.get_data()
    await state.set_state(SupportInvite.consent)
    locale = actor.locale
    replies.text(actor.chat_id or 0,
                 ctx.t("support.invite_consent", locale, name=data.get("name", ""),
                       shares=views.shares_words(ctx, frozenset(data.get("items", [])), locale)),
                 keyboard([[(ctx.t("support.create", locale), views.CREATE)],
                           [(ctx.t("support.cancel", locale), views.CANCEL)]]))


@participants.callback_query(F.data.in_({views.CREATE, views.CANCEL}))
async def create_link(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext) -> None:
    locale, chat = actor.locale, actor.chat_id or 0
    if await state.get_state() != SupportInvite.consent.state:
        replies.notice(ctx.t("support.expired", locale))
        return
    data = await state.get_data()
    await state.clear()
    if query.data == views.CANCEL:
        replies.text(chat, ctx.t("support.cancelled", locale))
        return
    try:
        person, issued = await service.invite(session, ctx.clock.now(), ctx.settings, actor, str(data.get("name", "")),
                                              frozenset(data.get("items", [])), by=actor_label(actor))
    except service.SupportError:
        replies.text(chat, ctx.t("support.too_many", locale, count=ctx.settings.support.max_per_participant))
        return
    username = ctx.settings.telegram.bot_username
    if not username and query.bot is not None:
        username = (await query.bot.me()).username or ""
    replies.text(chat, ctx.t("support.link_for_you", locale, name=person.label,
                             days=f"{ctx.settings.support.invite_days:g}"))
    replies.text(chat, ctx.t("support.link_to_forward", locale, program=_program(ctx, locale),
                             link=issued.link(username or "")))


@participants.callback_query(F.data.startswith(views.CHANGE))
async def change_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                        replies: Replies, ctx: AppContext) -> None:
    person = await _own(session, actor, (query.data or "")[len(views.CHANGE):])
    if person is None:
        replies.notice(ctx.t("support.gone", actor.locale))
        return
    items = await service.shares_of(session, person.id)
    await state.set_state(SupportChange.shares)
    await state.set_data({"person_id": person.id, "name": person.label, "items": sorted(items)})
    replies.text(actor.chat_id or 0, ctx.t("support.ask_shares", actor.locale, name=person.label),
                 views.share_keyboard(ctx, items, actor.locale, done=f"{views.SAVE}{person.id}",
                                      suffix=f":{person.id}"))


@participants.callback_query(F.data.startswith(views.SAVE))
async def save_shares(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext) -> None:
    data = await state.get_data()
    raw = (query.data or "")[len(views.SAVE):]
    person = await _own(session, actor, raw)
    if person is None or await state.get_state() != SupportChange.shares.state or str(data.get("person_id")) != raw:
        replies.notice(ctx.t("support.expired", actor.locale))
        return
    items = frozenset(data.get("items", []))
    await state.clear()
    await service.change_shares(session, ctx.clock.now(), person, items, by=actor_label(actor))
    replies.text(actor.chat_id or 0, ctx.t("support.changed", actor.locale, name=person.label,
                                           shares=views.shares_words(ctx, items, actor.locale)))


@participants.callback_query(F.data.startswith(views.REVOKE))
async def revoke_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    person = await _own(session, actor, (query.data or "")[len(views.REVOKE):])
    if person is None:
        replies.notice(ctx.t("support.gone", actor.locale))
        return
    locale = actor.locale
    replies.text(actor.chat_id or 0, ctx.t("support.revoke_ask", locale, name=person.label),
                 keyboard([[(ctx.t("support.revoke_yes", locale), f"{views.REVOKE_YES}{person.id}"),
                            (ctx.t("support.revoke_no", locale), views.KEEP)]]))


@participants.callback_query(F.data.startswith(views.REVOKE_YES))
async def revoke_yes(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                     ctx: AppContext) -> None:
    person = await _own(session, actor, (query.data or "")[len(views.REVOKE_YES):])
    if person is None:
        replies.notice(ctx.t("support.gone", actor.locale))
        return
    await service.revoke(session, ctx.clock.now(), person, by=actor_label(actor))
    replies.text(actor.chat_id or 0, ctx.t("support.revoked_done", actor.locale, name=person.label))
    replies.outbox_due = True  # they are told now


@participants.callback_query(F.data == views.KEEP)
async def keep(query: CallbackQuery, actor: Participant, replies: Replies, ctx: AppContext) -> None:
    replies.text(actor.chat_id or 0, ctx.t("support.kept", actor.locale))


# --- everyone else: the support persons' commands are theirs --------------------------------------------

@others.message(Command(*sorted(SUPPORT_PERSON_COMMANDS - {"stop"})))
async def only_for_support_persons(message: Message, actor: Staff | Participant | None, session: AsyncSession,
                                   replies: Replies, ctx: AppContext, locale: str) -> None:
    if actor is None:
        raise SkipHandler  # unknown people get the enrollment hint (the fallback)
    who = actor_label(actor)
    command = (message.text or "/")[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()
    audit(session, ctx.clock.now(), who, f"refused:/{command}"[:80],
          participant_id=actor.id if isinstance(actor, Participant) else None, allowed=False)
    replies.text(message.chat.id, ctx.t("support.only_support_persons", locale))
