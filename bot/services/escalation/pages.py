"""What a page says and its buttons: the alert (level, what was found, who is paged and why), the
reminder of an alert without an outcome, who took it and how it ended, and the keyboards
(Acknowledge, I contacted them, False alarm, Reassign; then one button per outcome)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import (
    AlertOutcome,
    Escalation,
    EscalationEvent,
    EscalationStatus,
    InboundMessage,
    ScheduledAction,
    Staff,
)
from bot.db.support_models import SupportAlert, SupportMessage, SupportPerson
from bot.messaging import Keyboard, keyboard
from bot.safety.levels import Level
from bot.services.escalation.kinds import ALERT_KIND, CHAIN, COVERAGE, FINAL, REASSIGNED, REMINDER, SUPPORT_SOURCE
from bot.services.labels import constructs_text, outcome_text
from bot.services.staff_time import staff_clock_text

# Outcome buttons: short codes in callback data ("esc:out:<id>:<code>"), in the order shown.
OUTCOME_CODES: dict[str, AlertOutcome] = {
    "safe": AlertOutcome.REACHED_SAFE,
    "plan": AlertOutcome.SAFETY_PLAN,
    "er": AlertOutcome.EMERGENCY_CARE,
    "unreached": AlertOutcome.COULD_NOT_REACH,
    "false": AlertOutcome.FALSE_ALARM,
}


def alert_keyboard(ctx: AppContext, escalation_id: int, locale: str) -> Keyboard:
    """An alert nobody has acknowledged yet."""
    return keyboard([
        [(ctx.t("alert.ack", locale), f"esc:ack:{escalation_id}"),
         (ctx.t("alert.contacted", locale), f"esc:contacted:{escalation_id}")],
        [(ctx.t("alert.false_alarm", locale), f"esc:false:{escalation_id}"),
         (ctx.t("alert.reassign", locale), f"esc:reassign:{escalation_id}")],
    ])


def outcome_keyboard(ctx: AppContext, escalation_id: int, locale: str) -> Keyboard:
    """How did it end? One button per outcome."""
    return keyboard([[(ctx.t(f"alert.outcome_{outcome}", locale), f"esc:out:{escalation_id}:{code}")]
                     for code, outcome in OUTCOME_CODES.items()])


def keyboard_for(ctx: AppContext, escalation: Escalation, locale: str) -> Keyboard | None:
    if escalation.status == EscalationStatus.OPEN:
        return alert_keyboard(ctx, escalation.id, locale)
    if escalation.status == EscalationStatus.ACKNOWLEDGED:
        return outcome_keyboard(ctx, escalation.id, locale)
    return None


def _role(escalation: Escalation, staff: Staff, reason: str) -> str:
    participant = escalation.participant
    if reason in (COVERAGE, FINAL, REASSIGNED):
        return reason
    if staff.id == participant.therapist_id:
        return "assigned"
    if staff.id == participant.backup_id or staff.on_call or not staff.is_lead:
        return "backup"
    return "lead"


async def alert_text(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                     page: int, reason: str = CHAIN) -> str:
    participant = escalation.participant
    role = _role(escalation, staff, reason)
    categories = ", ".join(c.replace("_", " ") for c in escalation.categories.split(",") if c) or "-"
    if escalation.source.startswith(SUPPORT_SOURCE):
        return await _support_alert_text(session, ctx, escalation, staff, page, role, categories)
    text = ctx.t(
        "alert.text", staff.locale, level=Level(escalation.level).label.upper(), alias=participant.alias,
        categories=categories, constructs=constructs_text(ctx, escalation.reasons.split(","), staff.locale),
        received=staff_clock_text(ctx, staff, escalation.message_received_at),
        role=ctx.t(f"alert.role_{role}", staff.locale), step=page,
    )
    if escalation.follow_up_count:
        text += "\n" + ctx.t("alert.follow_ups", staff.locale, count=escalation.follow_up_count)
    if ctx.settings.privacy.quote_in_alerts:
        words = await session.scalar(
            select(InboundMessage.text).where(InboundMessage.escalation_id == escalation.id)
            .order_by(InboundMessage.id).limit(1))
        if words:
            text += "\n\n" + ctx.t("alert.quote", staff.locale, words=words[:500])
    return text


async def _support_alert_text(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                              page: int, role: str, categories: str) -> str:
    """A support person's words opened this alert: whose support person (the name the participant
    gave them, and their alias), and whether it is about their own distress or the participant."""
    link = await session.get(SupportAlert, escalation.id)
    person = await session.get(SupportPerson, link.support_person_id) if link is not None else None
    about = "participant" if escalation.source.endswith("participant") else "self"
    text = ctx.t(
        "support.alert_text", staff.locale, level=Level(escalation.level).label.upper(),
        alias=escalation.participant.alias, who=person.label if person is not None else "-",
        support_alias=person.alias if person is not None else "-",
        about=ctx.t(f"support.alert_about_{about}", staff.locale, alias=escalation.participant.alias),
        categories=categories, constructs=constructs_text(ctx, escalation.reasons.split(","), staff.locale),
        received=staff_clock_text(ctx, staff, escalation.message_received_at),
        role=ctx.t(f"alert.role_{role}", staff.locale), step=page,
    )
    if escalation.follow_up_count:
        text += "\n" + ctx.t("support.alert_follow_ups", staff.locale, count=escalation.follow_up_count)
    if ctx.settings.privacy.quote_in_alerts:
        words = await session.scalar(
            select(SupportMessage.text).where(SupportMessage.escalation_id == escalation.id)
            .order_by(SupportMessage.id).limit(1))
        if words:
            text += "\n\n" + ctx.t("alert.quote", staff.locale, words=words[:500])
    return text


async def page_number(session: AsyncSession, row: ScheduledAction) -> int:
    """The page's place among this alert's pages (1 = the first)."""
    return int(await session.scalar(
        select(func.count()).select_from(ScheduledAction)
        .where(ScheduledAction.escalation_id == row.escalation_id, ScheduledAction.kind == ALERT_KIND,
               ScheduledAction.id <= row.id)) or 1)


async def page_text(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff,
                    row: ScheduledAction) -> str:
    """What this page says: the alert, or (for a reminder) that it still has no outcome."""
    reason = str(row.payload.get("reason", CHAIN))
    if reason == REMINDER:
        acknowledger = (await session.get(Staff, escalation.acknowledged_by_id)
                        if escalation.acknowledged_by_id else None)
        return ctx.t("alert.reminder", staff.locale, level=Level(escalation.level).label.upper(),
                     alias=escalation.participant.alias,
                     who=acknowledger.alias if acknowledger else "-",
                     at=staff_clock_text(ctx, staff, escalation.acknowledged_at or escalation.created_at))
    return await alert_text(session, ctx, escalation, staff, await page_number(session, row), reason)


async def stamps(session: AsyncSession, ctx: AppContext, escalation: Escalation, staff: Staff) -> str:
    """Who took the alert and how it ended, in `staff`'s language and time zone."""
    lines = []
    if escalation.acknowledged_at is not None:
        who = await session.get(Staff, escalation.acknowledged_by_id) if escalation.acknowledged_by_id else None
        lines.append(ctx.t("alert.stamp_acknowledged", staff.locale, who=who.alias if who else "-",
                           at=staff_clock_text(ctx, staff, escalation.acknowledged_at)))
    contacted = await session.scalar(
        select(EscalationEvent).where(EscalationEvent.escalation_id == escalation.id,
                                      EscalationEvent.kind == "contacted").order_by(EscalationEvent.id).limit(1))
    if contacted is not None:
        who = await session.get(Staff, contacted.staff_id) if contacted.staff_id else None
        lines.append(ctx.t("alert.stamp_contacted", staff.locale, who=who.alias if who else "-",
                           at=staff_clock_text(ctx, staff, contacted.at)))
    if escalation.resolved_at is not None:
        who = await session.get(Staff, escalation.resolved_by_id) if escalation.resolved_by_id else None
        lines.append(ctx.t("alert.stamp_resolved", staff.locale, who=who.alias if who else "-",
                           at=staff_clock_text(ctx, staff, escalation.resolved_at),
                           outcome=outcome_text(ctx, escalation.outcome, staff.locale)))
    return "\n".join(lines)
