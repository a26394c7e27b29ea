"""Running the bot: database, dispatcher, the scheduler tick, and polling or a webhook server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_bot, build_dispatcher
from bot.clock import Clock, OffsetFileClock, SystemClock
from bot.config import Settings, require_program_name, require_token
from bot.content.i18n import Texts
from bot.content.store import ContentStore
from bot.context import AppContext
from bot.db.engine import make_engine, make_sessionmaker, upgrade_async
from bot.safety.llm import LlmSecondOpinion
from bot.safety.rules import SafetyRules
from bot.services.brief.setup import install_brief
from bot.services.calendar.reminders import install_calendar
from bot.services.checkins.setup import install_checkins
from bot.services.data_key import check_data_key
from bot.services.delivery import DatabaseDeliveryRecorder
from bot.services.escalation.coverage import install_coverage
from bot.services.escalation.notices import send_staff_notice
from bot.services.escalation.setup import install_escalation
from bot.services.goals.setup import install_goals
from bot.services.instruments.setup import install_instruments
from bot.services.learning.setup import install_content
from bot.services.medications.setup import install_medications
from bot.services.outreach.setup import install_outreach
from bot.services.people import install_people
from bot.services.scheduling import maintenance
from bot.services.scheduling.outbox import OutboxWorker
from bot.telegram.messenger import TelegramMessenger
from bot.telegram.sender import SenderMiddleware

log = logging.getLogger(__name__)


def clock_from_environment() -> Clock:
    """The system clock, or (tests and the sandbox only) a clock moved through a shared file."""
    path = os.environ.get("IOPBOT_CLOCK_FILE")
    return OffsetFileClock(Path(path)) if path else SystemClock()


@dataclass
class RunningBot:
    """What `assemble` built: the one composition root of the bot."""

    ctx: AppContext
    bot: Bot
    dispatcher: Dispatcher
    sender: SenderMiddleware
    worker: OutboxWorker
    engine: AsyncEngine  # the database's connection pool: disposed when the bot stops
    assessor: SafetyRules
    second_opinion: LlmSecondOpinion | None  # None unless [llm] enabled = true


async def assemble(settings: Settings, clock: Clock | None = None, *, migrate: bool = True,
                   safety_rules: SafetyRules | None = None, content: ContentStore | None = None) -> RunningBot:
    """Everything the bot needs, wired, without starting to poll. Tests and the sandbox reuse this.

    `safety_rules` and `content` are loaded from `settings.content_dir` unless given: the test suite
    passes ones it loaded once per session from the same folder (compiling the rules takes seconds).
    `iopbot run` always loads them itself."""
    if migrate:
        await upgrade_async(settings.database.url)
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    ctx = AppContext(
        settings=settings,
        clock=clock or clock_from_environment(),
        texts=Texts.load(settings.content_dir),
        sessionmaker=make_sessionmaker(engine),
    )
    try:
        # Before anything is written: the wrong key, or no key once text is encrypted, stops the start.
        async with ctx.sessionmaker() as session:
            log.info("%s", await check_data_key(session, settings.secrets.data_key, ctx.clock.now()))
            await session.commit()
    except BaseException:
        await engine.dispose()
        raise
    bot, sender = build_bot(ctx, DatabaseDeliveryRecorder(ctx))
    worker = OutboxWorker(ctx, TelegramMessenger(bot, sender))
    # Every kind of scheduled row is registered here, with the function that sends it.
    install_escalation(worker)  # pages, alert plans, follow-ups, the line to the participant: urgent
    # Notes to staff (blocked the bot, missed check-ins, ...): a late one is still worth sending.
    worker.register("staff_notice", send_staff_notice, never_expire=True)
    install_checkins(ctx, worker)  # flow engine, check-in senders and planner (bot/services/checkins/setup.py)
    install_instruments(ctx, worker)  # weekly PHQ-9, GAD-7: flow kind, sender, planner (services/instruments/setup.py)
    install_calendar(ctx, worker)  # session reminders, notices and their planner (bot/services/calendar/reminders.py)
    # Content library + hot reload, exercises, daily read (bot/services/learning/setup.py).
    install_content(ctx, worker, store=content)
    install_coverage(ctx, worker)  # the daily notice to leads about coverage gaps (bot/services/escalation/coverage.py)
    install_people(ctx, worker)  # the goodbye on discharge (bot/services/people.py)
    install_goals(ctx, worker)  # the weekly goal progress prompt (bot/services/goals/setup.py)
    install_medications(ctx, worker)  # medication reminders and missed-dose notices (services/medications/setup.py)
    install_outreach(ctx, worker)  # the care team's messages to a participant (bot/services/outreach/setup.py)
    install_brief(ctx, worker)  # pre-session briefs and the daily digest (bot/services/brief/setup.py)
    # Housekeeping on its own interval (bot/services/scheduling/maintenance.py).
    worker.add_periodic("prune-processed-updates", maintenance.EVERY_SECONDS,
                        functools.partial(maintenance.prune_processed_updates, ctx))
    # Rules that fail validation stop the start: a bot without working safety rules must not run.
    assessor = safety_rules if safety_rules is not None else SafetyRules.load(settings.content_dir)
    second_opinion = LlmSecondOpinion.from_settings(settings)  # None unless [llm] enabled = true
    dispatcher = build_dispatcher(ctx, assessor, second_opinion=second_opinion)
    return RunningBot(ctx, bot, dispatcher, sender, worker, engine, assessor, second_opinion)


async def _serve_webhook(running: RunningBot) -> None:
    s = running.ctx.settings
    secret = s.secrets.webhook_secret
    if not secret:
        raise SystemExit("IOPBOT_WEBHOOK_SECRET is not set: a webhook without a secret would accept anyone's updates.")

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not secrets.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            update = Update.model_validate(await request.json(), context={"bot": running.bot})
        except ValueError:
            return web.Response(status=400, text="not an update")
        # Handled (and committed) before answering: if we crash, Telegram sends it again.
        await running.dispatcher.feed_update(running.bot, update)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(s.telegram.webhook_path, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, s.telegram.webhook_listen_host, s.telegram.webhook_listen_port)
    await site.start()
    await running.bot.set_webhook(s.telegram.webhook_url, secret_token=secret,
                                  allowed_updates=running.dispatcher.resolve_used_update_types())
    log.info("webhook listening on %s:%s", s.telegram.webhook_listen_host, s.telegram.webhook_listen_port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# How long a stopping bot waits for updates in progress (SIGTERM); systemd's default stop timeout is 90 s.
STOP_GRACE_SECONDS = 30.0


async def run(settings: Settings) -> None:
    require_token(settings)
    require_program_name(settings)
    running = await assemble(settings)
    me = await running.bot.get_me()
    log.info("bot @%s (id %s) starting in %s mode", me.username, me.id, settings.telegram.mode)
    worker_task = asyncio.create_task(running.worker.run_forever(), name="scheduler")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if settings.telegram.mode == "webhook":
        main = asyncio.create_task(_serve_webhook(running))
    else:
        await running.bot.delete_webhook(drop_pending_updates=False)
        main = asyncio.create_task(
            running.dispatcher.start_polling(
                # The session stays open when polling stops: updates in progress and the scheduler still send.
                running.bot, handle_signals=False, close_bot_session=False,
                polling_timeout=settings.telegram.polling_timeout_seconds,
                allowed_updates=running.dispatcher.resolve_used_update_types(),
            )
        )
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping")
    if settings.telegram.mode == "polling" and main not in done:
        # Stop fetching, then let the updates already fetched finish: Telegram counts them as
        # delivered, so one cut off here would be lost (a crisis message never reaching a clinician).
        await running.dispatcher.stop_polling()
        in_flight = set(running.dispatcher._handle_update_tasks)  # aiogram keeps no public handle
        if in_flight:
            log.info("waiting for %d update(s) in progress", len(in_flight))
            await asyncio.wait(in_flight, timeout=STOP_GRACE_SECONDS)
    # The scheduler claims nothing more, hands back what it has not started, finishes what it has.
    running.worker.stop()
    await asyncio.wait({worker_task}, timeout=STOP_GRACE_SECONDS)
    for task in (main, worker_task, stopper):
        task.cancel()
    for task in (main, worker_task):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if main in done and main.exception():
        raise main.exception()  # type: ignore[misc]
    await running.bot.session.close()
    await running.engine.dispose()
