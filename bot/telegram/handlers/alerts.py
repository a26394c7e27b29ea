"""Staff side of a flag: the alert buttons and /alerts.

An open alert has Acknowledge, I contacted them, False alarm and Reassign. Once someone has it,
the message shows who and when, and one button per outcome (reached and safe, safety plan
reviewed, sent to emergency care, could not reach, false alarm); after the outcome the bot asks
for an optional note (the next text the clinician sends, or Skip). A clinician sees only their
caseload's alerts; a lead sees all. Every view and decision is audited.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Escalation, EscalationStatus, Staff, StaffRole
from bot.messaging import Replies, keyboard
from bot.safety.levels import Level
from bot.services.audit import actor_label, audit
from bot.services.escalation import handling, pages
from bot.services.labels import outcome_text
from bot.services.staff_time import staff_clock_text
from bot.telegram.filters import IsStaff

router = Router(name="alerts")
router.message.filter(IsStaff())
router.callback_query.filter(IsStaff())


class AlertNote(StatesGroup):
    waiting = State()  # the next text is the note on how an alert ended


async def _load(session: AsyncSession, escalation_id: str) -> Escalation | None:
    try:
        return await session.get(Escalation, int(escalation_id))
    except ValueError:
        return None


async def _allowed(query: CallbackQuery, escalation: Escalation | None, actor: Staff, session: AsyncSession,
                   replies: Replies, ctx: AppContext, action: str) -> bool:
    now = ctx.clock.now()
    if escalation is None or not await handling.may_handle(session, actor, escalation):
        audit(session, now, actor_label(actor), f"refused:{action}", allowed=False)
        replies.notice(ctx.t("alert.not_yours", actor.locale))
        return False
    audit(session, now, actor_label(actor), action, participant_id=escalation.participant_id)
    return True


async def _show_everyone(query: CallbackQuery, escalation: Escalation, actor: Staff, session: AsyncSession,
                         replies: Replies, ctx: AppContext) -> None:
    """Every person who was paged sees who took it and how it ended, in their own time zone (so
    nobody else calls at 2 am for nothing); the message pressed gets the buttons of the next step."""
    pressed = query.message if isinstance(query.message, Message) else None
    if pressed is not None:
        # The message pressed may be a page whose "sent" mark is still being written: edit it directly.
        stamp = (await pages.stamps(session, ctx, escalation, actor)).splitlines()[-1:]
        replies.edit(pressed.chat.id, pressed.message_id, "\n\n".join([pressed.html_text, *stamp]),
                     pages.keyboard_for(ctx, escalation, actor.locale))
    for page in await handling.sent_pages(session, escalation):
        if pressed is not None and (page.chat_id, page.telegram_message_id) == (pressed.chat.id, pressed.message_id):
            continue
        staff = await session.get(Staff, page.staff_id) if page.staff_id else None
        staff = staff or actor
        text = await pages.page_text(session, ctx, escalation, staff, page)
        replies.edit(page.chat_id or 0, page.telegram_message_id or 0,
                     f"{text}\n\n{await pages.stamps(session, ctx, escalation, staff)}")


@router.callback_query(F.data.regexp(r"^esc:(ack|contacted):\d+$"))
async def acknowledge(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    _, action, escalation_id = (query.data or "").split(":")
    escalation = await _load(session, escalation_id)
    if not await _allowed(query, escalation, actor, session, replies, ctx, "alert_decision"):
        return
    assert escalation is not None
    if escalation.status == EscalationStatus.RESOLVED:
        replies.notice(ctx.t("alert.already_handled", actor.locale))
        return
    contacted = action == "contacted"
    if not await handling.acknowledge(session, ctx, escalation, actor, contacted=contacted):
        # Someone took it already: say who, and offer the outcomes on this message.
        who = await session.get(Staff, escalation.acknowledged_by_id) if escalation.acknowledged_by_id else None
        replies.notice(ctx.t("alert.contacted_noted" if contacted else "alert.already_acknowledged", actor.locale,
                             who=who.alias if who else "-"))
        if isinstance(query.message, Message):
            replies.edit(query.message.chat.id, query.message.message_id, query.message.html_text,
                         pages.outcome_keyboard(ctx, escalation.id, actor.locale))
        return
    replies.notice(ctx.t("alert.done_contacted" if contacted else "alert.done_acknowledged", actor.locale))
    await _show_everyone(query, escalation, actor, session, replies, ctx)


@router.callback_query(F.data.regexp(r"^esc:(false:\d+|out:\d+:[a-z]+)$"))
async def record_outcome(query: CallbackQuery, actor: Staff, session: AsyncSession, state: FSMContext,
                         replies: Replies, ctx: AppContext) -> None:
    parts = (query.data or "").split(":")
    code = "false" if parts[1] == "false" else parts[3]
    outcome = pages.OUTCOME_CODES.get(code)
    escalation = await _load(session, parts[2])
    if not await _allowed(query, escalation, actor, session, replies, ctx, "alert_decision"):
        return
    assert escalation is not None
    if outcome is None or not await handling.resolve(session, ctx, escalation, actor, outcome):
        replies.notice(ctx.t("alert.already_handled", actor.locale))
        return
    replies.notice(ctx.t("alert.done_resolved", actor.locale, outcome=outcome_text(ctx, outcome, actor.locale)))
    await _show_everyone(query, escalation, actor, session, replies, ctx)
    await state.set_state(AlertNote.waiting)
    await state.update_data(escalation_id=escalation.id)
    chat_id = query.message.chat.id if query.message else actor.chat_id or 0
    replies.text(chat_id, ctx.t("alert.ask_note", actor.locale, alias=escalation.participant.alias),
                 keyboard([[(ctx.t("alert.skip_note", actor.locale), f"esc:nskip:{escalation.id}")]]))


@router.callback_query(F.data.regexp(r"^esc:nskip:\d+$"))
async def skip_note(query: CallbackQuery, actor: Staff, state: FSMContext, replies: Replies, ctx: AppContext) -> None:
    await state.clear()
    replies.notice(ctx.t("alert.note_skipped", actor.locale))
    if isinstance(query.message, Message):
        replies.edit(query.message.chat.id, query.message.message_id, query.message.html_text, None)


@router.callback_query(F.data.regexp(r"^esc:reassign:\d+$"))
async def reassign_menu(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    escalation = await _load(session, (query.data or "").rsplit(":", 1)[1])
    if escalation is None or not await handling.may_handle(session, actor, escalation):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:alert_reassign", allowed=False)
        replies.notice(ctx.t("alert.not_yours", actor.locale))
        return
    if escalation.status != EscalationStatus.OPEN:
        replies.notice(ctx.t("alert.already_handled", actor.locale))
        return
    colleagues = (await session.scalars(
        select(Staff).where(Staff.active.is_(True), Staff.chat_id.is_not(None), Staff.id != actor.id,
                            Staff.role.in_([StaffRole.THERAPIST, StaffRole.COACH, StaffRole.LEAD]))
        .order_by(Staff.alias))).all()
    if not colleagues:
        replies.notice(ctx.t("alert.nobody_to_reassign", actor.locale))
        return
    buttons = [[(c.alias, f"esc:to:{escalation.id}:{c.id}")] for c in colleagues[:20]]
    replies.text(query.message.chat.id if query.message else actor.chat_id or 0,
                 ctx.t("alert.reassign_to", actor.locale), keyboard(buttons))


@router.callback_query(F.data.regexp(r"^esc:to:\d+:\d+$"))
async def reassign_to(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                      ctx: AppContext) -> None:
    _, _, escalation_id, staff_id = (query.data or "").split(":")
    escalation = await session.get(Escalation, int(escalation_id))
    target = await session.get(Staff, int(staff_id))
    if escalation is None or target is None or not await handling.may_handle(session, actor, escalation):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:alert_reassign", allowed=False)
        replies.notice(ctx.t("alert.not_yours", actor.locale))
        return
    if escalation.status != EscalationStatus.OPEN:
        replies.notice(ctx.t("alert.already_handled", actor.locale))
        return
    await handling.reassign(session, ctx, escalation, target)
    audit(session, ctx.clock.now(), actor_label(actor), "alert_reassign", participant_id=escalation.participant_id)
    replies.outbox_due = True
    replies.notice(ctx.t("alert.reassigned", actor.locale, who=target.alias))


@router.message(Command("alerts"))
async def alerts_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    unresolved = await handling.unresolved_for(session, actor)
    audit(session, ctx.clock.now(), actor_label(actor), "view:alerts")
    if not unresolved:
        replies.text(message.chat.id, ctx.t("alert.none_open", actor.locale))
        return
    for escalation in unresolved[:20]:
        text = ctx.t("alert.list_row", actor.locale, level=Level(escalation.level).label.upper(),
                     alias=escalation.participant.alias,
                     received=staff_clock_text(ctx, actor, escalation.message_received_at))
        if escalation.status == EscalationStatus.ACKNOWLEDGED:
            text += "\n" + await pages.stamps(session, ctx, escalation, actor) + "\n" + ctx.t(
                "alert.list_no_outcome", actor.locale)
        replies.text(message.chat.id, text, pages.keyboard_for(ctx, escalation, actor.locale))


@router.message(StateFilter(AlertNote.waiting), F.text, ~F.text.startswith("/"))
async def note_typed(message: Message, actor: Staff, session: AsyncSession, state: FSMContext, replies: Replies,
                     ctx: AppContext) -> None:
    data = await state.get_data()
    await state.clear()
    escalation = await session.get(Escalation, int(data.get("escalation_id", 0)))
    if escalation is None or not await handling.may_handle(session, actor, escalation):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:alert_note", allowed=False)
        replies.text(message.chat.id, ctx.t("alert.not_yours", actor.locale))
        return
    handling.add_note(session, ctx, escalation, actor, message.text or "")
    audit(session, ctx.clock.now(), actor_label(actor), "alert_note", participant_id=escalation.participant_id)
    replies.text(message.chat.id, ctx.t("alert.note_saved", actor.locale, alias=escalation.participant.alias))
