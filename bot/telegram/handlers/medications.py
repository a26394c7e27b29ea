"""/meds: a participant's medication reminders, and the Taken / Snooze / Skip buttons.

Thin: the dialog's steps live in aiogram's dialog state (in the database), everything else in
bot/services/medications. Add: name (typed, or "No name") → times (typed) → days (buttons) → the
question about telling the care team (the first time only) → saved and planned. A typed name
went through the safety gate like any message; it is stored encrypted and never logged.
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
from bot.db.medication_models import MedicationReminder
from bot.db.models import Participant
from bot.flows.engine import flow_opened_since
from bot.messaging import Keyboard, Replies
from bot.safety.levels import Assessment
from bot.services.medications import service, views
from bot.services.medications.schedule import ALL_DAYS, clean_name, parse_times
from bot.services.medications.summary import adherence
from bot.telegram.filters import IsEnrolledParticipant

router = Router(name="medications")
router.message.filter(IsEnrolledParticipant())
router.callback_query.filter(IsEnrolledParticipant())

# A typed answer is taken this long after the question; later text is an ordinary message again.
ANSWER_WINDOW = timedelta(minutes=30)


class AddReminder(StatesGroup):
    name = State()
    times = State()
    days = State()
    care = State()


async def _overview(session: AsyncSession, ctx: AppContext, actor: Participant) -> tuple[str, Keyboard]:
    now = ctx.clock.now()
    reminders = await service.reminders_of(session, actor.id)
    week = await adherence(session, actor.id, now - timedelta(days=7), now)
    return views.overview(ctx, actor.locale, reminders, await service.consent_of(session, actor.id),
                          (week.taken, week.due) if week.has_reminders else None, actor.timezone)


@router.message(Command("meds"))
async def meds_command(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                       replies: Replies, ctx: AppContext) -> None:
    if await state.get_state() in {s.state for s in AddReminder.__states__}:
        await state.clear()
    if not ctx.settings.medications.enabled:
        replies.text(message.chat.id, ctx.t("meds.off", actor.locale))
        return
    text, kb = await _overview(session, ctx, actor)
    replies.text(message.chat.id, text, kb)


async def _refresh(query: CallbackQuery, session: AsyncSession, ctx: AppContext, actor: Participant,
                   replies: Replies) -> None:
    """The /meds message the button was under, as it is now."""
    if query.message:
        text, kb = await _overview(session, ctx, actor)
        replies.edit(actor.chat_id or 0, query.message.message_id, text, kb)


# --- adding a reminder -------------------------------------------------------------------------------

@router.callback_query(F.data == views.ADD)
async def add_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                     replies: Replies, ctx: AppContext) -> None:
    if not ctx.settings.medications.enabled:
        replies.notice(ctx.t("meds.off", actor.locale))
        return
    if len(await service.reminders_of(session, actor.id)) >= service.MAX_REMINDERS:
        replies.text(actor.chat_id or 0, ctx.t("meds.too_many", actor.locale, count=service.MAX_REMINDERS))
        return
    await state.set_state(AddReminder.name)
    await state.set_data({"asked_at": ctx.clock.now().isoformat()})
    text, kb = views.ask_name(ctx, actor.locale)
    replies.text(actor.chat_id or 0, text, kb)


async def _ask_times(state: FSMContext, replies: Replies, ctx: AppContext, actor: Participant,
                     name: str | None) -> None:
    await state.set_state(AddReminder.times)
    await state.update_data(name=name, asked_at=ctx.clock.now().isoformat())
    replies.text(actor.chat_id or 0, ctx.t("meds.ask_times", actor.locale))


@router.callback_query(F.data == views.NO_NAME)
async def no_name_button(query: CallbackQuery, actor: Participant, state: FSMContext, replies: Replies,
                         ctx: AppContext) -> None:
    if await state.get_state() != AddReminder.name.state:
        replies.notice(ctx.t("meds.expired", actor.locale))
        return
    await _ask_times(state, replies, ctx, actor, None)


async def _fresh(state: FSMContext, session: AsyncSession, ctx: AppContext, actor: Participant) -> bool:
    """Whether typed text answers the open question: asked recently, and no check-in or
    questionnaire opened since (its typed answers are its own)."""
    asked = (await state.get_data()).get("asked_at")
    if not asked:
        return False
    since = datetime.fromisoformat(str(asked))
    return (ctx.clock.now() - since <= ANSWER_WINDOW
            and not await flow_opened_since(session, actor.id, since))


async def _not_an_answer(state: FSMContext, session: AsyncSession, ctx: AppContext, actor: Participant,
                         assessment: Assessment | None) -> bool:
    """Typed text that is no answer to the open question: stale, or flagged by the safety gate (it
    already replied; a sentence in distress is never stored as a reminder's name). The dialog
    ends and the message goes on as any message (the fallback keeps it for the care team)."""
    if assessment is not None and assessment.flagged:
        await state.clear()
        return True
    if not await _fresh(state, session, ctx, actor):
        await state.clear()
        return True
    return False


@router.message(StateFilter(AddReminder.name), F.text, ~F.text.startswith("/"))
async def typed_name(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                     replies: Replies, ctx: AppContext, assessment: Assessment | None = None) -> None:
    if await _not_an_answer(state, session, ctx, actor, assessment):
        raise SkipHandler()  # an ordinary message again
    name = clean_name(message.text or "")
    if name is None:
        text, kb = views.bad_name(ctx, actor.locale)
        replies.text(message.chat.id, text, kb)
        return
    await _ask_times(state, replies, ctx, actor, name)


@router.message(StateFilter(AddReminder.times), F.text, ~F.text.startswith("/"))
async def typed_times(message: Message, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext, assessment: Assessment | None = None) -> None:
    if await _not_an_answer(state, session, ctx, actor, assessment):
        raise SkipHandler()
    times = parse_times(message.text or "")
    if times is None:
        replies.text(message.chat.id, views.bad_times(ctx, actor.locale))
        return
    await state.set_state(AddReminder.days)
    await state.update_data(times=times, days=[], asked_at=ctx.clock.now().isoformat())
    text, kb = views.ask_days(ctx, actor.locale, [])
    replies.text(message.chat.id, text, kb)


@router.callback_query(F.data.regexp(r"^med:d:([0-6]|all|ok)$"))
async def day_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                     replies: Replies, ctx: AppContext) -> None:
    if await state.get_state() != AddReminder.days.state:
        replies.notice(ctx.t("meds.expired", actor.locale))
        return
    choice = (query.data or "").rsplit(":", 1)[1]
    days = set((await state.get_data()).get("days") or [])
    if choice.isdigit():
        days ^= {int(choice)}
        await state.update_data(days=sorted(days))
        if query.message:
            text, kb = views.ask_days(ctx, actor.locale, days)
            replies.edit(actor.chat_id or 0, query.message.message_id, text, kb)
        return
    if choice == "all":
        days = set(ALL_DAYS)
    if not days:
        replies.notice(ctx.t("meds.pick_a_day", actor.locale))
        return
    await state.update_data(days=sorted(days))
    if query.message:  # answered: the buttons go
        replies.edit(actor.chat_id or 0, query.message.message_id,
                     ctx.t("meds.ask_days", actor.locale) + "\n\n<b>"
                     + views.days_text(ctx, days, actor.locale) + "</b>", None)
    if ctx.settings.medications.notify_after_missed > 0 and await service.consent_of(session, actor.id) is None:
        await state.set_state(AddReminder.care)
        text, kb = views.ask_care(ctx, actor.locale)
        replies.text(actor.chat_id or 0, text, kb)
        return
    await _save(session, state, replies, ctx, actor)


async def _save(session: AsyncSession, state: FSMContext, replies: Replies, ctx: AppContext,
                actor: Participant) -> None:
    data = await state.get_data()
    await state.clear()
    times = [str(t) for t in data.get("times") or []]
    days = {int(d) for d in data.get("days") or []}
    if not times or not days:
        replies.text(actor.chat_id or 0, ctx.t("meds.expired", actor.locale))
        return
    await service.add_reminder(ctx, session, actor, data.get("name"), times, days)
    replies.outbox_due = True  # a reminder due in a moment goes out now
    replies.text(actor.chat_id or 0, ctx.t("meds.saved", actor.locale, times=", ".join(times),
                                           days=views.days_text(ctx, days, actor.locale)))


# --- telling the care team ---------------------------------------------------------------------------

@router.callback_query(F.data.in_({f"{views.CARE}y", f"{views.CARE}n"}))
async def care_button(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext) -> None:
    agreed = query.data == f"{views.CARE}y"
    in_setup = await state.get_state() == AddReminder.care.state
    await service.set_consent(ctx, session, actor, agreed)
    count = ctx.settings.medications.notify_after_missed
    said = ctx.t("meds.care_agreed" if agreed else "meds.care_declined", actor.locale, count=count)
    if in_setup:
        if query.message:
            replies.edit(actor.chat_id or 0, query.message.message_id,
                         ctx.t("meds.ask_care", actor.locale, count=count) + f"\n\n<b>{said}</b>", None)
        await _save(session, state, replies, ctx, actor)
        return
    replies.notice(said)
    await _refresh(query, session, ctx, actor, replies)


# --- pause, resume, remove ---------------------------------------------------------------------------

async def _own_reminder(query: CallbackQuery, session: AsyncSession, actor: Participant) -> MedicationReminder | None:
    try:
        reminder_id = int((query.data or "").rsplit(":", 1)[1])
    except ValueError:
        return None
    reminder = await session.get(MedicationReminder, reminder_id)
    if reminder is None or reminder.participant_id != actor.id or reminder.removed_at is not None:
        return None
    return reminder


@router.callback_query(F.data.regexp(r"^med:[prx]:\d+$"))
async def reminder_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                          ctx: AppContext) -> None:
    reminder = await _own_reminder(query, session, actor)
    if reminder is None:
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    action = (query.data or "")[4]
    if action == "p":
        await service.pause_reminder(ctx, session, reminder)
        replies.notice(ctx.t("meds.paused", actor.locale))
    elif action == "r":
        await service.resume_reminder(ctx, session, actor, reminder)
        replies.outbox_due = True
        replies.notice(ctx.t("meds.resumed", actor.locale))
    else:
        await service.remove_reminder(ctx, session, reminder)
        replies.notice(ctx.t("meds.removed", actor.locale))
    await _refresh(query, session, ctx, actor, replies)


# --- Taken / Snooze / Skip ---------------------------------------------------------------------------

@router.callback_query(F.data.regexp(r"^med:a:[tzs]:\d+$"))
async def answer_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    _, _, answer, dose_id = (query.data or "").split(":")
    result = await service.answer_dose(ctx, session, actor, int(dose_id), answer)
    if result.notice:
        replies.notice(result.notice)
    if result.text and query.message:
        shown = getattr(query.message, "html_text", None) or ""
        replies.edit(actor.chat_id or 0, query.message.message_id, f"{shown}\n\n{result.text}".strip(), None)
        if answer == service.Answer.SNOOZE:
            replies.outbox_due = True
