"""Participant commands: /settings, /pause, /resume, /stop, /mydata, and notes they write."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import Participant, ParticipantStatus
from bot.messaging import Replies, keyboard
from bot.services import enrollment
from bot.services.audit import actor_label, audit
from bot.services.groups.membership import leave_groups
from bot.services.participants import export_own_data
from bot.services.scheduling.hooks import participant_schedule_changed
from bot.services.support.service import end_with_participant
from bot.telegram.filters import IsEnrolledParticipant
from bot.telegram.handlers.onboarding import settings_summary

router = Router(name="participant")
router.message.filter(IsEnrolledParticipant())
router.callback_query.filter(IsEnrolledParticipant())

@router.message(Command("settings"))
async def settings_command(message: Message, actor: Participant, state: FSMContext, replies: Replies,
                           ctx: AppContext) -> None:
    await state.clear()
    text, kb = settings_summary(ctx, actor)
    replies.text(message.chat.id, text, kb)  # type: ignore[arg-type]


@router.message(Command("pause"))
async def pause_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                        ctx: AppContext) -> None:
    if actor.status == ParticipantStatus.PAUSED:
        replies.text(message.chat.id, ctx.t("pause.already", actor.locale))
        return
    await enrollment.pause(session, actor, ctx.clock.now())
    replies.outbox_due = True  # the clinician's notice goes out now, not at the next tick
    replies.text(message.chat.id, ctx.t("pause.done", actor.locale))


@router.message(Command("resume"))
async def resume_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    if actor.status in (ParticipantStatus.ACTIVE, ParticipantStatus.ALUMNI):
        replies.text(message.chat.id, ctx.t("resume.already", actor.locale))
        return
    await enrollment.resume(session, actor, ctx.clock.now())
    await participant_schedule_changed(session, ctx, actor)
    replies.outbox_due = True
    replies.text(message.chat.id, ctx.t("resume.done", actor.locale, checkin_time=actor.checkin_time))


@router.message(Command("stop"))
async def stop_command(message: Message, actor: Participant, replies: Replies, ctx: AppContext) -> None:
    replies.text(message.chat.id, ctx.t("stop.confirm", actor.locale),
                 keyboard([[(ctx.t("stop.yes", actor.locale), "stop:yes"),
                            (ctx.t("stop.no", actor.locale), "stop:no")]]))


@router.callback_query(F.data.in_({"stop:yes", "stop:no"}))
async def stop_answer(query: CallbackQuery, actor: Participant, session: AsyncSession, state: FSMContext,
                      replies: Replies, ctx: AppContext) -> None:
    if query.message:
        replies.edit(query.message.chat.id, query.message.message_id, ctx.t("stop.confirm", actor.locale), None)
    if query.data == "stop:no":
        replies.text(actor.chat_id or 0, ctx.t("stop.kept", actor.locale))
        return
    await state.clear()
    await enrollment.opt_out(session, actor, ctx.clock.now())
    await leave_groups(session, actor, ctx.clock.now(), "opted_out")  # out of the cohort's group chat, at once
    # Their support persons' sharing ends now too (as a revoke by them), not at the planner's next look.
    await end_with_participant(session, ctx.clock.now(), actor, by=f"participant:{actor.id}")
    replies.outbox_due = True  # the clinician's notice goes out now, not at the next tick
    replies.text(actor.chat_id or 0, ctx.t("stop.done", actor.locale))


@router.message(Command("mydata"))
async def mydata_command(message: Message, actor: Participant, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    now = ctx.clock.now()
    content = await export_own_data(session, actor, now)
    audit(session, now, actor_label(actor), "mydata", participant_id=actor.id)
    replies.document(message.chat.id, f"iopbot-mydata-{now:%Y%m%d}.json", content,
                     ctx.t("mydata.caption", actor.locale))
