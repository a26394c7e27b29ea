"""Factories for the Telegram edge: a pure `build_dispatcher` that tests reuse, and the Bot."""

from __future__ import annotations

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import BaseEventIsolation
from aiogram.fsm.storage.memory import SimpleEventIsolation

from bot.context import AppContext
from bot.safety.semantic import SemanticSecondOpinion
from bot.services.scheduling.replies import ReplyLedger
from bot.telegram.handlers import (
    alerts,
    brief,
    charts,
    content,
    edits,
    fallback,
    goals,
    groups,
    help,
    medications,
    onboarding,
    outreach,
    participant,
    sessions,
    staff,
    start,
    support,
    tracks,
)
from bot.telegram.handlers import flows as flow_routes
from bot.telegram.lanes import UpdateLanes, database_slots
from bot.telegram.middlewares import ActorMiddleware, DatabaseRetryMiddleware, UnitOfWorkMiddleware
from bot.telegram.routing import filters_on_the_loop, skip_routers_that_cannot_take
from bot.telegram.safety_gate import Assessor, FlagRecorder, SafetyGate, SecondOpinion
from bot.telegram.sender import DeliveryRecorder, SenderMiddleware
from bot.telegram.storage import DatabaseStorage


def build_dispatcher(ctx: AppContext, assessor: Assessor, *, second_opinion: SecondOpinion | None = None,
                     semantic: SemanticSecondOpinion | None = None,
                     isolation: BaseEventIsolation | None = None) -> Dispatcher:
    """The dispatcher with every router and middleware; no network, no side effects.

    Middleware order matters: the safety gate first (no database, so the crisis reply never
    waits for one), then holding the update while the database is unreachable, then one unit of
    work per update, who is asking (with their dialog state and whether an alert of theirs is open,
    in one statement), aiogram's dialog state (from that row), and the recording of whatever the
    gate flagged inside that unit of work.
    """
    # One update at a time per user: dialog state is read and written under this lock.
    dp = Dispatcher(storage=DatabaseStorage(ctx.sessionmaker), events_isolation=isolation or SimpleEventIsolation())
    # aiogram registers its FSM middleware (which reads dialog state from the database) at
    # construction; move it behind the safety gate, so the crisis reply never waits for the database.
    dp.update.outer_middleware.unregister(dp.fsm)
    gate = SafetyGate(ctx, assessor, second_opinion, semantic)
    dp.update.outer_middleware(gate)
    # While the database is down, hold the update and try again rather than lose it. One update
    # per person at a time, a few in their database work at a time, a flagged one first.
    lanes = UpdateLanes(database_slots(ctx.sessionmaker))
    ctx.page_listeners.append(lanes.page_sent)  # a page sent ends the hold on the backlog
    dp.update.outer_middleware(DatabaseRetryMiddleware(lanes=lanes))
    # The replies are written with the update's commit and their row deleted once sent (one ledger
    # per process: its deletions of many updates share a statement).
    ledger = ctx.parts.find(ReplyLedger) or ctx.parts.add(ReplyLedger(ctx.sessionmaker))
    dp.update.outer_middleware(UnitOfWorkMiddleware(ctx, ledger))
    # Who is writing, their dialog state and whether an alert of theirs is open: one statement.
    dp.update.outer_middleware(ActorMiddleware(ctx))
    # Dialog state is read in the update's own transaction (no second connection per update), from
    # the row the actor lookup brought along. Safe from lock-order deadlocks: DatabaseRetryMiddleware
    # already runs one update per person at a time.
    dp.update.outer_middleware(dp.fsm)
    dp.update.outer_middleware(FlagRecorder(ctx, gate))
    _include_once_more(
        dp,
        groups.router,  # first: every update of a group chat, and nothing else sees one (#17, peer groups)
        start.router,
        support.router,  # then: support persons (#17; neither staff nor participants), the participant's /support
        help.router,
        onboarding.router,
        participant.router,
        brief.router,  # /digest at HH:MM|off (before staff.py's /digest), attendance marks
        staff.router,
        alerts.router,
        sessions.router,  # /sessions, Can't attend and its reason (before flows: its typed reason)
        goals.router,  # /goals, /goal ALIAS, the weekly progress answers
        medications.router,  # /meds and the Taken / Snooze / Skip buttons
        outreach.router,  # /message ALIAS, replies to the care team, /techhelp
        charts.router,  # /trend ALIAS, /mytrend
        tracks.router,  # /track ALIAS NAME: a participant's program track, which picks their daily read
        content.router,  # /learn, /skills, /favorites, /plan, /safetyplan and their menu buttons
        flow_routes.router,  # flow buttons, typed answers of an open flow, /checkin
        fallback.router,  # last: refusals, unknown people, a participant's own notes
        edits.router,  # edited messages: assessed and recorded by the middlewares above, nothing more
    )
    filters_on_the_loop(dp)  # F.text and the like: no thread hop each (bot/telegram/routing.py)
    skip_routers_that_cannot_take(dp)  # a note no handler of a router takes skips it (same module)
    return dp


def _include_once_more(dp: Dispatcher, *routers: Router) -> None:
    """Include the handler modules' routers, taking them from any dispatcher built before.

    The routers are module-level objects and aiogram lets a router have one parent; a process may
    build several dispatchers (tests, the sandbox restarting its bot), and only the newest is used.
    """
    for router in routers:
        previous = router.parent_router
        if previous is not None:
            previous.sub_routers.remove(router)
            router._parent_router = None  # aiogram has no public detach
    dp.include_routers(*routers)


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
