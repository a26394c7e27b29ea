"""Participant side of the session calendar: /sessions, "Can't attend" and its reason.

Can't attend → the absence is recorded at once → reason buttons (sick, work, family, transport,
other) → "other" asks for a few typed words (optional). The facilitator and the assigned
clinician are told when the reason is in (or after a short wait without one); the participant
gets an acknowledgement and can say they can come after all.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.calendar_models import AttendanceStatus, SessionOccurrence
from bot.db.models import Participant
from bot.flows.engine import flow_opened_since
from bot.messaging import Keyboard, Replies, in_rows, keyboard
from bot.services.calendar import attendance
from bot.services.calendar import occurrences as cal
from bot.services.calendar.attendance import REASONS, Outcome
from bot.services.calendar.reminders import day_text, kind_text, session_keyboard, time_text
from bot.telegram.filters import IsEnrolledParticipant

router = Router(name="sessions")
router.message.filter(IsEnrolledParticipant())
router.callback_query.filter(IsEnrolledParticipant())

LIST_DAYS = 7
LIST_BUTTONS = 8  # "can't attend" buttons under /sessions
# A typed reason is taken this long after the question; later text is an ordinary message again
# (so a question left unanswered does not swallow a check-in answer typed hours later).
REASON_WINDOW = timedelta(minutes=20)


class CantAttend(StatesGroup):
    reason = State()  # reason buttons shown; typed text is taken as the reason
    note = State()  # "other": a few typed words


def _occurrence_id(data: str | None) -> int | None:
    try:
        return int((data or "").split(":")[2])
    except (IndexError, ValueError):
        return None


def _words(ctx: AppContext, p: Participant, occ: SessionOccurrence) -> dict[str, str]:
    return dict(kind=kind_text(ctx, occ.session.kind, p.locale),
                day=day_text(ctx, occ.start_at, p.timezone, p.locale),
                time=time_text(ctx, occ.start_at, p.timezone, p.locale))


_REFUSALS = {Outcome.NOT_YOURS: "sessions.not_yours", Outcome.CANCELLED: "sessions.session_cancelled",
             Outcome.OVER: "sessions.session_over"}


# --- /sessions ------------------------------------------------------------------------------------

@router.message(Command("sessions"))
async def sessions_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                           ctx: AppContext) -> None:
    now = ctx.clock.now()
    occs = await cal.participant_upcoming(session, actor, now, now + timedelta(days=LIST_DAYS))
    if not occs:
        replies.text(message.chat.id, ctx.t("sessions.list_none", actor.locale))
        return
    lines = [ctx.t("sessions.list_title", actor.locale, timezone=actor.timezone)]
    buttons: list[tuple[str, str]] = []
    for occ in occs:
        answer = await attendance.answer_of(session, actor.id, occ.id)
        words = _words(ctx, actor, occ)
        if answer is not None and answer.status == AttendanceStatus.CANT_ATTEND:
            lines.append(ctx.t("sessions.list_row_cant", actor.locale, **words))
            continue
        lines.append(ctx.t("sessions.list_row", actor.locale, link=occ.session.video_link, **words))
        if len(buttons) < LIST_BUTTONS:
            buttons.append((ctx.t("sessions.list_cant_button", actor.locale, day=words["day"], time=words["time"]),
                            f"att:no:{occ.id}"))
    replies.text(message.chat.id, "\n".join(lines), keyboard(in_rows(buttons, 1)) if buttons else None)


# --- can't attend ---------------------------------------------------------------------------------

def _reason_keyboard(ctx: AppContext, locale: str, occurrence_id: int) -> Keyboard:
    buttons = [(ctx.t(f"sessions.reason_{code}", locale), f"att:r:{occurrence_id}:{code}") for code in REASONS]
    return keyboard(in_rows(buttons, 2))


@router.callback_query(F.data.regexp(r"^att:no:\d+$"))
async def cant_attend_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                             replies: Replies, ctx: AppContext) -> None:
    now = ctx.clock.now()
    occ = await session.get(SessionOccurrence, _occurrence_id(query.data) or 0)
    outcome = await attendance.cant_attend(session, ctx.settings, actor, occ, now)
    chat = actor.chat_id or 0
    if outcome in _REFUSALS:
        replies.notice(ctx.t(_REFUSALS[outcome], actor.locale))
        return
    assert occ is not None
    if outcome == Outcome.ALREADY:
        replies.text(chat, ctx.t("sessions.already", actor.locale), keyboard(
            [[(ctx.t("sessions.can_attend", actor.locale), f"att:yes:{occ.id}")]]))
        return
    await state.set_state(CantAttend.reason)
    await state.update_data(occurrence=occ.id, asked_at=now.isoformat())
    replies.outbox_due = True  # the run-of-absences notice, if any, goes now
    replies.text(chat, ctx.t("sessions.ask_reason", actor.locale), _reason_keyboard(ctx, actor.locale, occ.id))


async def _finish(session: AsyncSession, state: FSMContext, replies: Replies, ctx: AppContext, actor: Participant,
                  occ: SessionOccurrence, reason: str, note: str | None) -> None:
    await state.clear()
    if not await attendance.give_reason(session, actor, occ, reason, note, ctx.clock.now()):
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    replies.outbox_due = True  # the facilitator and the clinician are told now
    replies.text(actor.chat_id or 0, ctx.t("sessions.recorded", actor.locale, **_words(ctx, actor, occ)),
                 keyboard([[(ctx.t("sessions.can_attend", actor.locale), f"att:yes:{occ.id}")]]))


@router.callback_query(F.data.regexp(r"^att:r:\d+:[a-z]+$"))
async def reason_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                        replies: Replies, ctx: AppContext) -> None:
    occ = await session.get(SessionOccurrence, _occurrence_id(query.data) or 0)
    code = (query.data or "").rsplit(":", 1)[1]
    if occ is None or code not in REASONS:
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    if query.message:  # the question is answered: take the buttons away
        replies.edit(actor.chat_id or 0, query.message.message_id, ctx.t("sessions.ask_reason", actor.locale)
                     + f"\n\n<b>{ctx.t(f'sessions.reason_{code}', actor.locale)}</b>", None)
    if code == "other":
        await state.set_state(CantAttend.note)
        await state.update_data(occurrence=occ.id, asked_at=ctx.clock.now().isoformat())
        replies.text(actor.chat_id or 0, ctx.t("sessions.ask_note", actor.locale),
                     keyboard([[(ctx.t("sessions.skip", actor.locale), f"att:skip:{occ.id}")]]))
        return
    await _finish(session, state, replies, ctx, actor, occ, code, None)


@router.callback_query(F.data.regexp(r"^att:skip:\d+$"))
async def skip_note(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                    replies: Replies, ctx: AppContext) -> None:
    occ = await session.get(SessionOccurrence, _occurrence_id(query.data) or 0)
    if occ is None:
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    await _finish(session, state, replies, ctx, actor, occ, "other", None)


@router.message(StateFilter(CantAttend.reason, CantAttend.note), F.text, ~F.text.startswith("/"))
async def typed_reason(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                       replies: Replies, ctx: AppContext) -> None:
    # The text went through the safety gate before it got here, like any message.
    data = await state.get_data()
    asked = datetime.fromisoformat(str(data.get("asked_at"))) if data.get("asked_at") else None
    occ = await session.get(SessionOccurrence, int(data.get("occurrence") or 0))
    if (occ is None or asked is None or ctx.clock.now() - asked > REASON_WINDOW
            or await flow_opened_since(session, actor.id, asked)):
        # Too late, or a check-in or questionnaire opened since (its typed answers are its own):
        # an ordinary message again, the fallback keeps it for the care team.
        await state.clear()
        raise SkipHandler()
    await _finish(session, state, replies, ctx, actor, occ, "other", message.text)


@router.callback_query(F.data.regexp(r"^att:yes:\d+$"))
async def can_attend_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                            replies: Replies, ctx: AppContext) -> None:
    occ = await session.get(SessionOccurrence, _occurrence_id(query.data) or 0)
    outcome = await attendance.can_attend_after_all(session, actor, occ, ctx.clock.now())
    if outcome in _REFUSALS:
        replies.notice(ctx.t(_REFUSALS[outcome], actor.locale))
        return
    assert occ is not None
    await state.clear()
    replies.outbox_due = True
    replies.text(actor.chat_id or 0, ctx.t("sessions.back_in", actor.locale, **_words(ctx, actor, occ)),
                 session_keyboard(ctx, occ, actor.locale, cant_attend=True))

