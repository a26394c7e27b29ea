"""Enrollment dialog: consent → time zone → check-in time → quiet hours.

The same steps serve /settings: a step entered from settings returns to the settings summary.
State lives in the database (aiogram FSM on DatabaseStorage), so a participant half-way through
can continue after a restart.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, ParticipantStatus
from bot.messaging import Replies, in_rows, keyboard
from bot.services import enrollment
from bot.services.timeparse import find_timezone, parse_local_time, parse_quiet_hours
from bot.telegram.filters import ENROLLED, IsParticipant

router = Router(name="onboarding")
router.message.filter(IsParticipant())
router.callback_query.filter(IsParticipant())

CHECKIN_TIMES = ("08:00", "09:00", "10:00", "12:00", "18:00", "20:00")
LANGUAGES = {"en": "English", "es": "Español"}


class Onboarding(StatesGroup):
    consent = State()
    timezone = State()
    checkin_time = State()
    quiet_hours = State()
    language = State()


def consent_text(ctx: AppContext, p: Participant) -> str:
    s = ctx.settings.program
    name = s.name.strip() or ctx.t("consent.program_unnamed", p.locale)  # `iopbot run` requires a name
    return ctx.t("consent.text", p.locale, program=name, scope=s.consent_scope)


def consent_keyboard(ctx: AppContext, p: Participant) -> object:
    """Agree, decline, and (first screen, before anything is stored) the other languages."""
    others = [(f"🌐 {label}", f"ob:lang:{code}") for code, label in LANGUAGES.items() if code != p.locale]
    return keyboard([[(ctx.t("consent.agree", p.locale), "ob:agree")],
                     [(ctx.t("consent.decline", p.locale), "ob:decline")], others])


def show_consent(replies: Replies, ctx: AppContext, p: Participant) -> None:
    replies.text(p.chat_id or 0, consent_text(ctx, p), consent_keyboard(ctx, p))  # type: ignore[arg-type]


def ask_timezone(replies: Replies, ctx: AppContext, p: Participant) -> None:
    zones = ctx.settings.enrollment.timezone_buttons
    buttons = [(z.split("/")[-1].replace("_", " "), f"tz:{z}") for z in zones]
    replies.text(p.chat_id or 0, ctx.t("onboarding.ask_timezone", p.locale, current=p.timezone),
                 keyboard(in_rows(buttons, 2)))


def ask_checkin_time(replies: Replies, ctx: AppContext, p: Participant) -> None:
    buttons = [(t, f"ct:{t}") for t in CHECKIN_TIMES]
    replies.text(p.chat_id or 0, ctx.t("onboarding.ask_checkin_time", p.locale, current=p.checkin_time),
                 keyboard(in_rows(buttons, 3)))


def ask_quiet_hours(replies: Replies, ctx: AppContext, p: Participant) -> None:
    replies.text(
        p.chat_id or 0,
        ctx.t("onboarding.ask_quiet_hours", p.locale, start=p.quiet_start, end=p.quiet_end),
        keyboard([[(ctx.t("onboarding.keep_quiet_hours", p.locale, start=p.quiet_start, end=p.quiet_end), "qh:keep")],
                  [(ctx.t("onboarding.no_quiet_hours", p.locale), "qh:none")]]),
    )


def ask_language(replies: Replies, ctx: AppContext, p: Participant) -> None:
    replies.text(p.chat_id or 0, ctx.t("settings.ask_language", p.locale),
                 keyboard([[(label, f"lang:{code}") for code, label in LANGUAGES.items()]]))


def settings_summary(ctx: AppContext, p: Participant) -> tuple[str, object]:
    quiet = (ctx.t("settings.quiet_none", p.locale) if p.quiet_start == p.quiet_end
             else f"{p.quiet_start}–{p.quiet_end}")
    text = ctx.t("settings.summary", p.locale, timezone=p.timezone, checkin_time=p.checkin_time,
                 quiet=quiet, language=LANGUAGES.get(p.locale, p.locale))
    kb = keyboard([
        [(ctx.t("settings.change_timezone", p.locale), "set:tz"),
         (ctx.t("settings.change_time", p.locale), "set:time")],
        [(ctx.t("settings.change_quiet", p.locale), "set:quiet"),
         (ctx.t("settings.change_language", p.locale), "set:lang")],
    ])
    return text, kb


async def _after_step(next_step: State | None, state: FSMContext, replies: Replies, ctx: AppContext,
                      p: Participant, session: AsyncSession) -> None:
    """Go to the next onboarding step, or back to the settings summary when changing a setting."""
    from bot.services.scheduling.hooks import participant_schedule_changed

    data = await state.get_data()
    await participant_schedule_changed(session, ctx, p)
    if data.get("from_settings"):
        await state.clear()
        text, kb = settings_summary(ctx, p)
        replies.text(p.chat_id or 0, ctx.t("settings.saved", p.locale) + "\n\n" + text, kb)  # type: ignore[arg-type]
        return
    if next_step is Onboarding.checkin_time:
        await state.set_state(next_step)
        ask_checkin_time(replies, ctx, p)
    elif next_step is Onboarding.quiet_hours:
        await state.set_state(next_step)
        ask_quiet_hours(replies, ctx, p)
    else:
        await state.clear()
        enrollment.finish_onboarding(p)
        await participant_schedule_changed(session, ctx, p)
        replies.text(p.chat_id or 0, ctx.t("onboarding.done", p.locale, checkin_time=p.checkin_time,
                                           timezone=p.timezone))


# --- consent ---------------------------------------------------------------------------------

@router.callback_query(F.data.in_({"ob:agree", "ob:decline"}))
async def consent_answer(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                         replies: Replies, ctx: AppContext) -> None:
    if actor.status != ParticipantStatus.CONSENT_PENDING:
        replies.notice(ctx.t("common.already_done", actor.locale))
        return
    now = ctx.clock.now()
    if query.message:
        # Keep the text the participant agreed to (or not) on screen; only the buttons go.
        answer = "consent.stamp_agreed" if query.data == "ob:agree" else "consent.stamp_declined"
        replies.edit(actor.chat_id or 0, query.message.message_id,
                     f"{consent_text(ctx, actor)}\n\n{ctx.t(answer, actor.locale)}", None)
    if query.data == "ob:decline":
        chat_id, user_id = actor.chat_id or 0, actor.telegram_user_id
        enrollment.record_refusal(actor, now)
        await state.clear()
        if user_id is not None:
            ctx.directory.forget(user_id)
        replies.text(chat_id, ctx.t("consent.declined", actor.locale))
        return
    enrollment.record_consent(actor, now, ctx.settings)
    await state.set_state(Onboarding.timezone)
    replies.text(actor.chat_id or 0, ctx.t("consent.thanks", actor.locale))
    ask_timezone(replies, ctx, actor)


@router.callback_query(F.data.startswith("ob:lang:"))
async def consent_language(query: CallbackQuery, actor: Participant, replies: Replies, ctx: AppContext) -> None:
    """The first screen in another language: the consent text is shown again, in place."""
    code = (query.data or "")[len("ob:lang:"):]
    if actor.status != ParticipantStatus.CONSENT_PENDING or code not in LANGUAGES:
        replies.notice(ctx.t("common.already_done", actor.locale))
        return
    actor.locale = code
    if actor.telegram_user_id is not None:
        ctx.directory.remember(actor.telegram_user_id, actor)  # the crisis reply's language, too
    if query.message:
        replies.edit(actor.chat_id or 0, query.message.message_id, consent_text(ctx, actor),
                     consent_keyboard(ctx, actor))  # type: ignore[arg-type]
    else:
        show_consent(replies, ctx, actor)


@router.message(StateFilter(Onboarding.consent), F.text)
async def consent_typed(message: Message, actor: Participant, replies: Replies, ctx: AppContext) -> None:
    replies.text(actor.chat_id or 0, ctx.t("consent.use_buttons", actor.locale))
    show_consent(replies, ctx, actor)


# --- time zone --------------------------------------------------------------------------------

@router.callback_query(StateFilter(Onboarding.timezone), F.data.startswith("tz:"))
async def timezone_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                          replies: Replies, ctx: AppContext) -> None:
    zone = find_timezone((query.data or "")[3:])
    if zone is None:
        replies.notice(ctx.t("onboarding.timezone_unknown_short", actor.locale))
        return
    actor.timezone = zone
    replies.text(actor.chat_id or 0, ctx.t("onboarding.timezone_set", actor.locale, timezone=zone))
    await _after_step(Onboarding.checkin_time, state, replies, ctx, actor, session)


@router.message(StateFilter(Onboarding.timezone), F.text)
async def timezone_typed(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                         replies: Replies, ctx: AppContext) -> None:
    zone = find_timezone(message.text or "")
    if zone is None:
        replies.text(actor.chat_id or 0, ctx.t("onboarding.timezone_unknown", actor.locale))
        return
    actor.timezone = zone
    replies.text(actor.chat_id or 0, ctx.t("onboarding.timezone_set", actor.locale, timezone=zone))
    await _after_step(Onboarding.checkin_time, state, replies, ctx, actor, session)


# --- check-in time ------------------------------------------------------------------------------

async def _set_checkin_time(value: str | None, actor: Participant, session: AsyncSession, state: FSMContext,
                            replies: Replies, ctx: AppContext) -> None:
    if value is None:
        replies.text(actor.chat_id or 0, ctx.t("onboarding.time_invalid", actor.locale))
        return
    actor.checkin_time = value
    replies.text(actor.chat_id or 0, ctx.t("onboarding.time_set", actor.locale, checkin_time=value))
    await _after_step(Onboarding.quiet_hours, state, replies, ctx, actor, session)


@router.callback_query(StateFilter(Onboarding.checkin_time), F.data.startswith("ct:"))
async def checkin_time_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                              replies: Replies, ctx: AppContext) -> None:
    await _set_checkin_time(parse_local_time((query.data or "")[3:]), actor, session, state, replies, ctx)


@router.message(StateFilter(Onboarding.checkin_time), F.text)
async def checkin_time_typed(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                             replies: Replies, ctx: AppContext) -> None:
    await _set_checkin_time(parse_local_time(message.text or ""), actor, session, state, replies, ctx)


# --- quiet hours ---------------------------------------------------------------------------------

async def _set_quiet(value: tuple[str, str] | None, actor: Participant, session: AsyncSession,
                     state: FSMContext, replies: Replies, ctx: AppContext) -> None:
    if value is None:
        replies.text(actor.chat_id or 0, ctx.t("onboarding.quiet_invalid", actor.locale))
        return
    actor.quiet_start, actor.quiet_end = value
    await _after_step(None, state, replies, ctx, actor, session)


@router.callback_query(StateFilter(Onboarding.quiet_hours), F.data.in_({"qh:keep", "qh:none"}))
async def quiet_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                       replies: Replies, ctx: AppContext) -> None:
    value = (actor.quiet_start, actor.quiet_end) if query.data == "qh:keep" else ("00:00", "00:00")
    await _set_quiet(value, actor, session, state, replies, ctx)


@router.message(StateFilter(Onboarding.quiet_hours), F.text)
async def quiet_typed(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext) -> None:
    await _set_quiet(parse_quiet_hours(message.text or ""), actor, session, state, replies, ctx)


# --- language (settings only) -------------------------------------------------------------------

@router.callback_query(StateFilter(Onboarding.language), F.data.startswith("lang:"))
async def language_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                          replies: Replies, ctx: AppContext) -> None:
    code = (query.data or "")[5:]
    if code not in LANGUAGES:
        replies.notice(ctx.t("common.not_available", actor.locale))
        return
    actor.locale = code
    if actor.telegram_user_id is not None:
        ctx.directory.remember(actor.telegram_user_id, actor)
    await _after_step(None, state, replies, ctx, actor, session)


# --- /settings entry points ---------------------------------------------------------------------

_SETTING_STEPS = {
    "set:tz": (Onboarding.timezone, ask_timezone),
    "set:time": (Onboarding.checkin_time, ask_checkin_time),
    "set:quiet": (Onboarding.quiet_hours, ask_quiet_hours),
    "set:lang": (Onboarding.language, ask_language),
}


@router.callback_query(F.data.in_(set(_SETTING_STEPS)))
async def change_setting(query: CallbackQuery, actor: Participant, state: FSMContext, replies: Replies,
                         ctx: AppContext) -> None:
    if actor.status not in ENROLLED:
        replies.notice(ctx.t("common.finish_enrollment_first", actor.locale))
        return
    step, ask = _SETTING_STEPS[query.data or ""]
    await state.set_state(step)
    await state.update_data(from_settings=True)
    ask(replies, ctx, actor)
