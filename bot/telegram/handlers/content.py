"""Participant commands of the content library: /learn, /skills, /favorites, /plan, /safetyplan, and
their menu buttons (`ci:<action>:<argument>`, see bot.content.callbacks).

Thin: each handler parses, calls bot/services/learning/shelf.py or exercises.py, and adds replies.
Going to another part of the library sets an exercise in progress aside (/skills continues it),
so that what the participant types next is not taken as an answer to a step they left.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import callbacks as cb
from bot.content.store import ContentStore
from bot.context import AppContext
from bot.db.models import Participant
from bot.flows.engine import FlowEngine
from bot.messaging import Keyboard, Replies
from bot.services.learning import exercises
from bot.services.learning import shelf as learning
from bot.services.learning.receipts import delivered_ids
from bot.telegram.filters import IsEnrolledParticipant

router = Router(name="content")
router.message.filter(IsEnrolledParticipant())
router.callback_query.filter(IsEnrolledParticipant())


def _available(ctx: AppContext) -> bool:
    return ctx.parts.find(ContentStore) is not None and ctx.parts.find(FlowEngine) is not None


def _send(replies: Replies, chat_id: int, menu: tuple[str, Keyboard | None]) -> None:
    replies.text(chat_id, menu[0], menu[1])


@router.message(Command("learn", "skills", "favorites", "plan", "safetyplan"))
async def content_command(message: Message, command: CommandObject, actor: Participant, session: AsyncSession,
                          replies: Replies, ctx: AppContext) -> None:
    chat_id, locale = message.chat.id, actor.locale
    if not _available(ctx):
        replies.text(chat_id, ctx.t("common.not_available", locale))
        return
    name = command.command.lower()  # also when the command came as a photo's caption
    await exercises.set_aside(session, ctx, actor)
    if name == "learn":
        _send(replies, chat_id, learning.topics_menu(ctx, locale))
    elif name == "skills":
        _send(replies, chat_id, await learning.skills_menu(session, ctx, actor))
    elif name == "favorites":
        _send(replies, chat_id, await learning.favorites_menu(session, ctx, actor))
    elif name in learning.PLANS:
        await learning.show_plan(session, ctx, actor, name, replies)


@router.callback_query(F.data.startswith(f"{cb.ITEM_PREFIX}{cb.SEPARATOR}"))
async def content_button(query: CallbackQuery, actor: Participant, session: AsyncSession, replies: Replies,
                         ctx: AppContext) -> None:
    button = cb.parse_item_callback(query.data)
    if button is None or not _available(ctx):
        replies.notice(ctx.t("common.button_expired", actor.locale))
        return
    action, argument, locale = button.action, button.argument, actor.locale
    chat_id = actor.chat_id or 0
    message_id = query.message.message_id if query.message else None
    if action in (cb.TOPIC, cb.TOPICS):
        kb: Keyboard | None
        if action == cb.TOPIC:
            read = await delivered_ids(session, actor.id)
            text, kb = learning.topic_menu(ctx, locale, argument, read)
        else:
            text, kb = learning.topics_menu(ctx, locale)
        if message_id is not None:
            replies.edit(chat_id, message_id, text, kb)  # the menu changes in place
        else:
            replies.text(chat_id, text, kb)
    elif action == cb.OPEN_SNIPPET:
        await exercises.set_aside(session, ctx, actor)
        await learning.open_snippet(session, ctx, actor, argument, replies)
    elif action == cb.START_EXERCISE:
        await exercises.start_exercise(session, ctx, actor, argument, replies)
    elif action == cb.CONTINUE_RUN:
        run_id = int(argument) if argument.isdigit() and int(argument) < 2**31 else None  # ids are 32-bit
        if run_id is None or not await exercises.continue_exercise(session, ctx, actor, run_id, replies):
            replies.notice(ctx.t("skills.not_open", locale))
    elif action == cb.LEAVE_EXERCISE:
        await _leave(actor, session, replies, ctx, argument, message_id)
    elif action in (cb.HELPFUL_YES, cb.HELPFUL_NO, cb.SAVE, cb.UNSAVE) \
            and learning.content_library(ctx).get(argument, locale) is not None:  # never a made-up id
        if action in (cb.HELPFUL_YES, cb.HELPFUL_NO):
            await learning.answer_helpful(session, ctx, actor, argument, action == cb.HELPFUL_YES, replies,
                                          message_id)
        else:
            await learning.set_saved(session, ctx, actor, argument, action == cb.SAVE, replies, message_id)
    else:
        replies.notice(ctx.t("common.button_expired", locale))


async def _leave(actor: Participant, session: AsyncSession, replies: Replies, ctx: AppContext, exercise_id: str,
                 message_id: int | None) -> None:
    engine = ctx.parts.get(FlowEngine)
    runs = await exercises.set_aside(session, ctx, actor, exercise_id)
    if not runs:
        replies.notice(ctx.t("skills.not_open", actor.locale))
        return
    step = engine.current_step(runs[0])
    if step is not None and message_id is not None and actor.chat_id is not None:
        replies.edit(actor.chat_id, message_id, step.text, None)  # no buttons left to press twice
    replies.text(actor.chat_id or 0, ctx.t("exercise.left", actor.locale))
