"""Staff side of a flag: the alert buttons (Acknowledge, I contacted them, False alarm, Reassign)
and /alerts. A clinician sees only their caseload's alerts; a lead sees all. Every view is audited."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Escalation, EscalationStatus, Staff, StaffRole
from bot.safety.levels import Level
from bot.services import escalation as esc
from bot.services.audit import actor_label, audit
from bot.services.context import AppContext
from bot.telegram.filters import IsStaff
from bot.telegram.keyboards import keyboard
from bot.telegram.replies import Replies

router = Router(name="alerts")
router.message.filter(IsStaff())
router.callback_query.filter(IsStaff())

_DECISIONS = {
    "ack": EscalationStatus.ACKNOWLEDGED,
    "contacted": EscalationStatus.CONTACTED,
    "false": EscalationStatus.FALSE_ALARM,
}


async def _load(session: AsyncSession, data: str) -> Escalation | None:
    try:
        escalation_id = int(data.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None
    return await session.get(Escalation, escalation_id)


@router.callback_query(F.data.regexp(r"^esc:(ack|contacted|false):\d+$"))
async def decide(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                 ctx: AppContext) -> None:
    escalation = await _load(session, query.data or "")
    now = ctx.clock.now()
    if escalation is None or not await esc.may_handle(session, actor, escalation):
        audit(session, now, actor_label(actor), "refused:alert_decision", allowed=False)
        replies.notice(ctx.t("alert.not_yours", actor.locale))
        return
    audit(session, now, actor_label(actor), "alert_decision", participant_id=escalation.participant_id)
    if escalation.status != EscalationStatus.OPEN:
        replies.notice(ctx.t("alert.already_handled", actor.locale))
        return
    decision = _DECISIONS[(query.data or "").split(":")[1]]
    pages = await esc.decide(session, ctx, escalation, actor, decision)
    replies.notice(ctx.t(f"alert.done_{decision}", actor.locale))
    stamp = ctx.t(f"alert.stamp_{decision}", actor.locale, who=actor.alias, at=f"{now:%H:%M} UTC")
    pressed = query.message if isinstance(query.message, Message) else None
    if pressed is not None:
        # The message pressed may be a page whose "sent" mark is still being written: stamp it directly.
        replies.edit(pressed.chat.id, pressed.message_id, f"{pressed.html_text}\n\n{stamp}")
    for page in pages:
        if pressed is not None and (page.chat_id, page.telegram_message_id) == (pressed.chat.id, pressed.message_id):
            continue
        # Every person who was paged sees who took it, so nobody else calls at 2 am for nothing.
        staff = await session.get(Staff, page.staff_id) if page.staff_id else None
        text = await esc.alert_text(session, ctx, escalation, staff or actor, int(page.payload.get("step", 0)))
        replies.edit(page.chat_id or 0, page.telegram_message_id or 0, f"{text}\n\n{stamp}")


@router.callback_query(F.data.regexp(r"^esc:reassign:\d+$"))
async def reassign_menu(query: CallbackQuery, actor: Staff, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    escalation = await _load(session, query.data or "")
    if escalation is None or not await esc.may_handle(session, actor, escalation):
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
    if escalation is None or target is None or not await esc.may_handle(session, actor, escalation):
        audit(session, ctx.clock.now(), actor_label(actor), "refused:alert_reassign", allowed=False)
        replies.notice(ctx.t("alert.not_yours", actor.locale))
        return
    if escalation.status != EscalationStatus.OPEN:
        replies.notice(ctx.t("alert.already_handled", actor.locale))
        return
    await esc.reassign(session, ctx, escalation, target)
    audit(session, ctx.clock.now(), actor_label(actor), "alert_reassign", participant_id=escalation.participant_id)
    replies.outbox_due = True
    replies.notice(ctx.t("alert.reassigned", actor.locale, who=target.alias))


@router.message(Command("alerts"))
async def alerts_command(message: Message, actor: Staff, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    open_flags = await esc.open_escalations_for(session, actor)
    audit(session, ctx.clock.now(), actor_label(actor), "view:alerts")
    if not open_flags:
        replies.text(message.chat.id, ctx.t("alert.none_open", actor.locale))
        return
    for escalation in open_flags[:20]:
        text = ctx.t("alert.list_row", actor.locale, level=Level(escalation.level).label.upper(),
                     alias=escalation.participant.alias,
                     received=f"{escalation.message_received_at:%Y-%m-%d %H:%M} UTC")
        replies.text(message.chat.id, text, esc.alert_keyboard(ctx, escalation.id, actor.locale))
