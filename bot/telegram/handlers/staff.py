"""Staff commands: /caseload, /trends ALIAS, /digest and /settings (/alerts is in alerts.py).

A clinician sees their own caseload; a lead or admin sees the program. Every view is audited,
and every refusal too; the digest is a disclosure of each participant it names (42 CFR Part 2).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Staff
from bot.messaging import Keyboard, Replies, in_rows, keyboard
from bot.services.audit import actor_label, audit, disclose
from bot.services.caseload import (
    caseload_rows,
    digest_for,
    find_participant,
    participant_trends,
)
from bot.services.caseload_text import caseload_messages, digest_messages, trends_messages
from bot.services.coaching import coach_lines, sees_coach_view
from bot.services.outreach.messages import message_button
from bot.services.staff_time import staff_zone
from bot.services.timeparse import find_timezone
from bot.services.visibility import example_alias, may_see
from bot.telegram.filters import IsStaff

router = Router(name="staff")
router.message.filter(IsStaff())
router.callback_query.filter(IsStaff())



def _send(replies: Replies, chat_id: int, messages: list[str]) -> None:
    for text in messages:
        replies.text(chat_id, text)


@router.message(Command("caseload"))
async def caseload_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                           ctx: AppContext) -> None:
    now = ctx.clock.now()
    rows = await caseload_rows(session, actor, now, expire_hours=ctx.settings.checkin.expire_hours)
    audit(session, now, actor_label(actor), "view:caseload")
    # A coach sees goals and medication reminders first; a therapist, check-ins and questionnaires.
    first = await coach_lines(ctx, session, actor, rows, now) if sees_coach_view(actor) else None
    _send(replies, message.chat.id, caseload_messages(ctx, rows, actor.locale, first))


@router.message(Command("trends"))
async def trends_command(message: Message, command: CommandObject, actor: Staff, session: AsyncSession,
                         replies: Replies, ctx: AppContext) -> None:
    now, who, locale = ctx.clock.now(), actor_label(actor), actor.locale
    alias = next(iter((command.args or "").split()), "")
    if not alias:
        replies.text(message.chat.id, ctx.t("trends.usage", locale, example=await example_alias(session, actor)))
        return
    participant = await find_participant(session, alias)
    if participant is None or not await may_see(session, actor, participant):
        # One answer for "no such alias" and "not on your caseload": the reply must not tell a
        # clinician which aliases exist outside their caseload. Both are audited.
        audit(session, now, who, "refused:/trends", participant_id=participant.id if participant else None,
              allowed=False)
        replies.text(message.chat.id, ctx.t("trends.not_on_caseload", locale, alias=alias[:80],
                                            example=await example_alias(session, actor)))
        return
    trends = await participant_trends(session, participant, now, expire_hours=ctx.settings.checkin.expire_hours)
    audit(session, now, who, "view:trends", participant_id=participant.id)
    *first, last = trends_messages(ctx, trends, locale)
    _send(replies, message.chat.id, first)
    # A "Message P-101" button under the last part starts /message (bot/telegram/handlers/outreach.py).
    replies.text(message.chat.id, last, message_button(ctx, participant, locale))


@router.message(Command("digest"))
async def digest_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    now, who = ctx.clock.now(), actor_label(actor)
    digest = await digest_for(session, actor, now, expire_hours=ctx.settings.checkin.expire_hours)
    audit(session, now, who, "view:digest")
    for participant_id in sorted(digest.participant_ids):
        disclose(session, now, participant_id, who, "digest")
    _send(replies, message.chat.id, digest_messages(ctx, digest, actor.locale, staff_zone(ctx, actor)))


# --- the staff member's own settings: their time zone ---------------------------------------------

class StaffSetup(StatesGroup):
    timezone = State()  # the next text may be a city or a zone name


def timezone_question(ctx: AppContext, staff: Staff) -> tuple[str, Keyboard]:
    """The same time-zone picker participants get: the program's zones as buttons, or type a city."""
    zones = ctx.settings.enrollment.timezone_buttons
    buttons = [(z.split("/")[-1].replace("_", " "), f"stz:{z}") for z in zones]
    current = staff.timezone or ctx.settings.program.default_timezone
    return ctx.t("staff.ask_timezone", staff.locale, current=current), keyboard(in_rows(buttons, 2))


async def ask_timezone(replies: Replies, ctx: AppContext, staff: Staff, state: FSMContext, chat_id: int,
                       before: str = "") -> None:
    text, kb = timezone_question(ctx, staff)
    await state.set_state(StaffSetup.timezone)
    replies.text(chat_id, f"{before}\n\n{text}" if before else text, kb)


@router.message(Command("settings"))
async def settings_command(message: Message, actor: Staff, state: FSMContext, replies: Replies,
                           ctx: AppContext) -> None:
    await state.clear()
    replies.text(message.chat.id, ctx.t("staff.settings", actor.locale,
                                        timezone=actor.timezone or ctx.settings.program.default_timezone),
                 keyboard([[(ctx.t("staff.change_timezone", actor.locale), "sset:tz")]]))


@router.callback_query(F.data == "sset:tz")
async def change_timezone(query: CallbackQuery, actor: Staff, state: FSMContext, replies: Replies,
                          ctx: AppContext) -> None:
    await ask_timezone(replies, ctx, actor, state, query.message.chat.id if query.message else actor.chat_id or 0)


async def _set_timezone(zone: str, actor: Staff, session: AsyncSession, state: FSMContext, replies: Replies,
                        ctx: AppContext, chat_id: int) -> None:
    actor.timezone = zone
    await state.clear()
    audit(session, ctx.clock.now(), actor_label(actor), "staff:timezone")
    replies.text(chat_id, ctx.t("staff.timezone_set", actor.locale, timezone=zone))


@router.callback_query(F.data.startswith("stz:"))
async def timezone_button(query: CallbackQuery, actor: Staff, session: AsyncSession, state: FSMContext,
                          replies: Replies, ctx: AppContext) -> None:
    zone = find_timezone((query.data or "")[4:])
    if zone is None:
        replies.notice(ctx.t("onboarding.timezone_unknown_short", actor.locale))
        return
    await _set_timezone(zone, actor, session, state, replies, ctx,
                        query.message.chat.id if query.message else actor.chat_id or 0)


@router.message(StateFilter(StaffSetup.timezone), F.text, ~F.text.startswith("/"))
async def timezone_typed(message: Message, actor: Staff, session: AsyncSession, state: FSMContext,
                         replies: Replies, ctx: AppContext) -> None:
    zone = find_timezone(message.text or "")
    if zone is None:
        # Asked once: the program's zone stays, and /settings changes it later. The staff member's
        # next texts are not taken for zone names.
        await state.clear()
        replies.text(message.chat.id, ctx.t("staff.timezone_unknown", actor.locale,
                                            timezone=actor.timezone or ctx.settings.program.default_timezone))
        return
    await _set_timezone(zone, actor, session, state, replies, ctx, message.chat.id)
