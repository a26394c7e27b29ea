"""Marking attendance from the brief: the roster as buttons, and one tap to change a mark.

A facilitator taps "Mark attendance" under a brief and gets the session's participants as
buttons; each tap cycles ✅ was there → ❌ was not → not marked, and the message is redrawn. Only
after the session has started; only the facilitator or staff who may see the participant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import SessionOccurrence
from bot.db.models import Participant, Staff
from bot.messaging import Keyboard, in_rows, keyboard
from bot.services.audit import actor_label, audit
from bot.services.calendar import presence
from bot.services.calendar.reminders import kind_text, staff_when

MARK_KEY = {True: "attendance.present", False: "attendance.absent", None: "attendance.not_marked"}


@dataclass(frozen=True)
class Outcome:
    """What the tapping staff member is told (a toast), and the redrawn roster when it changed."""

    notice: str
    view: tuple[str, Keyboard] | None = None


async def roster_view(ctx: AppContext, session: AsyncSession, occ: SessionOccurrence,
                      staff: Staff) -> tuple[str, Keyboard]:
    """The participants this staff member may mark (the facilitator: everyone the session is for)."""
    locale = staff.locale
    entries = [e for e in await presence.roster(session, occ)
               if await _may_mark_id(session, staff, occ, e.participant_id)]
    buttons = []
    for e in entries:
        label = ctx.t(MARK_KEY[e.present], locale, alias=e.alias)
        if e.said_cant_attend:
            label = ctx.t("attendance.said_cant", locale, mark=label)
        buttons.append((label, f"pres:{occ.id}:{e.participant_id}"))
    title = ctx.t("attendance.title", locale, kind=kind_text(ctx, occ.session.kind, locale),
                  when=staff_when(ctx, occ, locale))
    return title, keyboard(in_rows(buttons, 2))


async def open_roster(ctx: AppContext, session: AsyncSession, staff: Staff,
                      occurrence_id: int) -> Outcome:
    occ = await session.get(SessionOccurrence, occurrence_id)
    if occ is None or occ.is_cancelled:
        return Outcome(ctx.t("attendance.gone", staff.locale))
    view = await roster_view(ctx, session, occ, staff)
    if not view[1].inline_keyboard:  # nobody in this session they may mark
        audit(session, ctx.clock.now(), actor_label(staff), f"attendance:view:occurrence:{occ.id}", allowed=False)
        return Outcome(ctx.t("attendance.refused", staff.locale))
    audit(session, ctx.clock.now(), actor_label(staff), f"view:attendance:occurrence:{occ.id}")
    return Outcome("", view)


async def toggle(ctx: AppContext, session: AsyncSession, staff: Staff, occurrence_id: int,
                 participant_id: int, now: datetime) -> Outcome:
    occ = await session.get(SessionOccurrence, occurrence_id)
    participant = await session.get(Participant, participant_id)
    if occ is None or occ.is_cancelled or participant is None:
        return Outcome(ctx.t("attendance.gone", staff.locale))
    if not await presence.may_mark(session, staff, occ, participant):
        audit(session, now, actor_label(staff), f"attendance:mark:occurrence:{occ.id}",
              participant_id=participant.id, allowed=False)
        return Outcome(ctx.t("attendance.refused", staff.locale))
    if occ.start_at > now:
        return Outcome(ctx.t("attendance.not_started", staff.locale))
    current = {e.participant_id: e.present for e in await presence.roster(session, occ)}.get(participant.id)
    await presence.mark(session, occ, participant, presence.next_mark(current), staff, now)
    await session.flush()
    return Outcome(ctx.t("attendance.saved", staff.locale), await roster_view(ctx, session, occ, staff))


async def _may_mark_id(session: AsyncSession, staff: Staff, occ: SessionOccurrence, participant_id: int) -> bool:
    participant = await session.get(Participant, participant_id)
    return participant is not None and await presence.may_mark(session, staff, occ, participant)
