"""Outer middlewares: one unit of work per update, and who is asking.

Order (outermost first, after aiogram's own): SafetyGate (no database: the crisis reply must go
out even when the database is down) → UnitOfWork (dedup by update_id, one session, one commit,
replies sent after the commit) → Actor (staff, participant or unknown; locale).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update
from sqlalchemy.exc import IntegrityError

from bot.db.models import Participant, ProcessedUpdate, Staff
from bot.db.storage import current_session
from bot.services.context import AppContext
from bot.services.participants import find_actor
from bot.telegram.replies import Replies

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UnitOfWorkMiddleware(BaseMiddleware):
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        bot: Bot = data["bot"]
        replies = Replies(callback_query_id=event.callback_query.id if event.callback_query else None)
        data["replies"] = replies
        try:
            async with self.ctx.sessionmaker() as session:
                token = current_session.set(session)
                try:
                    session.add(ProcessedUpdate(update_id=event.update_id, received_at=self.ctx.clock.now()))
                    try:
                        await session.flush()
                    except IntegrityError:
                        await session.rollback()
                        log.info("update %s already handled; skipped", event.update_id)
                        replies.clear()
                        return None
                    data["session"] = session
                    result = await handler(event, data)
                    await session.commit()
                finally:
                    current_session.reset(token)
        except BaseException:
            # Whatever failed, the participant's button must stop spinning.
            await replies.answer_callback(bot)
            raise
        if replies.outbox_due:
            # Before the replies: a clinician's page written in this unit of work must not wait
            # until this update's ordinary replies got through the sender's queue.
            self.ctx.wake_outbox()
        await replies.flush(bot)
        return result


class ActorMiddleware(BaseMiddleware):
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        chat = data.get("event_chat")
        if chat is not None and chat.type != "private":
            # Private chats only: in a group or channel, a person's export, notes or caseload would
            # go to everyone there (and the safety gate assesses private chats only). Not answered.
            log.info("update %s from a %s chat ignored", getattr(event, "update_id", "?"), chat.type)
            return None
        user = data.get("event_from_user")
        actor: Staff | Participant | None = None
        if user is not None:
            actor = await find_actor(data["session"], user.id)
        data["actor"] = actor
        if isinstance(actor, Staff | Participant):
            data["locale"] = actor.locale
            self.ctx.directory.remember(user.id, actor)
        else:
            code = (user.language_code or "") if user else ""
            data["locale"] = "es" if code.startswith("es") else self.ctx.settings.program.default_locale
        data["ctx"] = self.ctx
        return await handler(event, data)
