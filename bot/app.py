"""Factories for the Telegram edge: a pure `build_dispatcher` that tests reuse, and the Bot."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.fsm.storage.memory import SimpleEventIsolation

from bot.db.storage import DatabaseStorage
from bot.flows import onboarding
from bot.handlers import fallback, help, participant, staff, start
from bot.services.context import AppContext
from bot.telegram.middlewares import ActorMiddleware, UnitOfWorkMiddleware
from bot.telegram.sender import DeliveryRecorder, SenderMiddleware


def build_dispatcher(ctx: AppContext, *, isolation: BaseEventIsolation | None = None) -> Dispatcher:
    """The dispatcher with every router and middleware; no network, no side effects."""
    # One update at a time per user: dialog state is read and written under this lock.
    dp = Dispatcher(storage=DatabaseStorage(ctx.sessionmaker), events_isolation=isolation or SimpleEventIsolation())
    gate = ctx.extras.get("safety_gate")
    if gate is not None:
        dp.update.outer_middleware(gate)
    dp.update.outer_middleware(UnitOfWorkMiddleware(ctx))
    dp.update.outer_middleware(ActorMiddleware(ctx))
    for extra in ctx.extras.get("inner_update_middlewares", []):
        dp.update.outer_middleware(extra)
    dp.include_routers(
        start.router,
        help.router,
        *ctx.extras.get("routers_first", []),
        onboarding.router,
        participant.router,
        staff.router,
        *ctx.extras.get("routers", []),
        fallback.router,
    )
    return dp


def build_bot(ctx: AppContext, recorder: DeliveryRecorder | None = None) -> tuple[Bot, SenderMiddleware]:
    """The Bot pointed at `[telegram] api_base`, with every request going through the sender."""
    s = ctx.settings
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(s.telegram.api_base.rstrip("/")),
        timeout=s.telegram.request_timeout_seconds,
    )
    sender = SenderMiddleware(s.sender, recorder)
    session.middleware(sender)
    bot = Bot(token=s.secrets.bot_token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    return bot, sender
