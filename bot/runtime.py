"""Running the bot: database, dispatcher, the scheduler tick, and one of three roles: the webhook
server, the elected poller, or schedule only (bot/services/scheduling/workers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from bot.db.worker_models import WorkerMode
from bot.safety.llm import LlmSecondOpinion
from bot.safety.rules import SafetyRules
from bot.safety.semantic import SemanticLayer, SemanticSecondOpinion
from bot.services.brief.setup import install_brief
from bot.services.calendar.reminders import install_calendar
from bot.services.checkins.setup import install_checkins
from bot.services.data_key import check_data_key
from bot.services.delivery import DatabaseDeliveryRecorder
from bot.services.escalation.coverage import install_coverage
from bot.services.escalation.notices import send_staff_notice
from bot.services.escalation.setup import install_escalation
from bot.services.goals.setup import install_goals
from bot.services.groups.setup import install_groups
from bot.services.instruments.setup import install_instruments
from bot.services.learning.setup import install_content
from bot.services.medications.setup import install_medications
from bot.services.outreach.setup import install_outreach
from bot.services.people import install_people
from bot.services.scheduling import maintenance
from bot.services.scheduling.outbox import OutboxWorker
from bot.services.scheduling.replies import REPLY_KIND, ReplyLedger, send_cut_replies
from bot.services.scheduling.workers import ParticipantOrderedOutbox, PollerElection, WorkerRegistry, workers
from bot.services.support.setup import install_support
from bot.telegram.group_admin import TelegramGroupAdmin
from bot.telegram.health_http import add_health_route, serve_health
from bot.telegram.messenger import TelegramMessenger
from bot.telegram.polling import CommittedOffsetPoller
from bot.telegram.sender import SenderMiddleware, install_send_budget

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
    semantic: SemanticSecondOpinion | None = None  # the local semantic layer; None when [semantic] enabled = false


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
    # One send rate for all workers: shared through PostgreSQL, in-process on SQLite (bot/telegram/send_budget.py).
    install_send_budget(sender, engine)
    # Each participant's scheduled message is sent in their advisory lock, so their next update
    # (on any worker) sees what it wrote (bot/services/scheduling/workers.py).
    worker = ParticipantOrderedOutbox(ctx, TelegramMessenger(bot, sender))
    # Every kind of scheduled row is registered here, with the function that sends it.
    install_escalation(worker)  # pages, alert plans, follow-ups, the line to the participant: urgent
    # Notes to staff (blocked the bot, missed check-ins, ...): a late one is still worth sending.
    worker.register("staff_notice", send_staff_notice, never_expire=True)
    # An update's replies cut by a worker's death (written with its commit, not sent): sent by any
    # worker once their lease runs out, however late (bot/services/scheduling/replies.py).
    worker.register(REPLY_KIND, send_cut_replies, never_expire=True)
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
    install_support(ctx, worker)  # support persons: weekly check-in, family reminders (services/support/setup.py)
    # Cohort group chats: joins, removals, paced posts and prompts (bot/services/groups/setup.py).
    install_groups(ctx, worker, TelegramGroupAdmin(bot))
    # Housekeeping on its own interval (bot/services/scheduling/maintenance.py).
    worker.add_periodic("prune-processed-updates", maintenance.EVERY_SECONDS,
                        functools.partial(maintenance.prune_processed_updates, ctx))
    worker.add_periodic("prune-reply-rows", maintenance.EVERY_SECONDS,
                        functools.partial(maintenance.prune_reply_rows, ctx))
    # Rules that fail validation stop the start: a bot without working safety rules must not run.
    assessor = safety_rules if safety_rules is not None else SafetyRules.load(settings.content_dir)
    second_opinion = LlmSecondOpinion.from_settings(settings)  # None unless [llm] enabled = true
    # The semantic layer reads meaning where the rules have no words (bot/safety/semantic.py); a
    # missing model stops the start like broken rules do, unless it is turned off in config.
    semantic = SemanticSecondOpinion(SemanticLayer.load(assessor)) if settings.semantic.enabled else None
    dispatcher = build_dispatcher(ctx, assessor, second_opinion=second_opinion, semantic=semantic)
    return RunningBot(ctx, bot, dispatcher, sender, worker, engine, assessor, second_opinion, semantic)


def settle_after_assembly() -> None:
    """What assembly built (routers, safety rules, content, the ORM's mappers) lives as long as
    the process: moved out of the garbage collector's sight (gc.freeze), so its collections walk
    only what the updates create. Called once by `run`, after `assemble`."""
    gc.collect()
    gc.freeze()


async def _serve_webhook(running: RunningBot, stop: asyncio.Event, worker_id: str) -> None:
    """Serve the webhook until `stop`. Several workers may serve one bot behind a load balancer:
    none of them registers the webhook (`iopbot webhook set` does, once), each update is handled and
    committed before its 200, and a stopping worker finishes the updates it has before closing."""
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
        # Handled (and committed) before answering: if we crash, Telegram sends it again (to
        # another worker, through the load balancer); the update id makes the second one a no-op.
        await running.dispatcher.feed_update(running.bot, update)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(s.telegram.webhook_path, handle)
    add_health_route(app, running.ctx, worker_id)  # GET /healthz: this worker's database and scheduler tick
    # On stop: no new connections, then up to STOP_GRACE_SECONDS for the updates in progress.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_GRACE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, s.telegram.webhook_listen_host, s.telegram.webhook_listen_port)
    await site.start()
    log.info("webhook listening on %s:%s%s", s.telegram.webhook_listen_host, s.telegram.webhook_listen_port,
             s.telegram.webhook_path)
    await _check_webhook_registered(running)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _check_webhook_registered(running: RunningBot) -> None:
    """Say so in the log when Telegram has no webhook for this bot (or another one): the workers
    would wait for updates that never come. Registering is `iopbot webhook set`'s job, not ours."""
    try:
        info = await running.bot.get_webhook_info()
    except Exception as exc:  # the webhook keeps serving; this was only a hint
        log.warning("could not read the webhook's registration (%s)", type(exc).__name__)
        return
    want = running.ctx.settings.telegram.webhook_url
    if not info.url:
        log.warning("Telegram has no webhook for this bot: run `iopbot webhook set` once (not on every worker)")
    elif want and info.url != want:
        log.warning("Telegram's webhook is %s, not [telegram] webhook_url %s: run `iopbot webhook set`",
                    info.url, want)


async def _poll_while_elected(running: RunningBot, election: PollerElection, registry: WorkerRegistry,
                              stop: asyncio.Event) -> None:
    """Polling mode: wait for the poller role, poll while holding it, and when it is lost (the
    database connection that held it failed) stop polling and wait for it again. Until `stop`.

    The offset confirms a batch to Telegram only once it is committed (bot/telegram/polling.py):
    a poller killed mid-batch leaves the batch for the next poller."""
    s = running.ctx.settings
    while await election.acquire(stop):
        log.info("worker %s holds the poller role: polling", registry.id)
        await registry.set_polling(True, running.ctx.clock.now())
        poller = CommittedOffsetPoller(running.dispatcher, running.bot, timeout=s.telegram.polling_timeout_seconds,
                                       allowed_updates=running.dispatcher.resolve_used_update_types())
        polling = lost = None
        try:
            try:  # polling mode: a webhook left set would answer every getUpdates with 409
                await running.bot.delete_webhook(drop_pending_updates=False)
            except Exception as exc:  # the poller retries; its 409s will say so in the log
                log.warning("could not delete the webhook before polling (%s)", type(exc).__name__)
            polling = asyncio.create_task(poller.run(), name="polling")
            lost = asyncio.create_task(election.wait_lost(), name="poller-role")
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({polling, lost, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if polling in done:
                polling.result()  # polling ended by itself: an error worth stopping for
                return
            await _stop_polling(poller)
            await polling
            if stop.is_set():
                return
            log.warning("worker %s: polling stopped; waiting for the poller role again", registry.id)
        finally:
            if lost is not None:
                lost.cancel()
            if polling is not None and not polling.done():
                polling.cancel()
            await registry.set_polling(False, running.ctx.clock.now())


async def _stop_polling(poller: CommittedOffsetPoller) -> None:
    """Stop fetching, then let the updates already fetched finish (those not committed yet are
    also still at Telegram: the next poller would get them again, and skip what was committed)."""
    poller.stop()
    in_flight = poller.in_progress
    if in_flight:
        log.info("waiting for %d update(s) in progress", len(in_flight))
        await asyncio.wait(in_flight, timeout=STOP_GRACE_SECONDS)


# How long a stopping bot waits for updates in progress (SIGTERM); systemd's default stop timeout is 90 s.
STOP_GRACE_SECONDS = 30.0


async def _warn_if_sqlite_is_shared(running: RunningBot, registry: WorkerRegistry) -> None:
    """SQLite serves one process: a second `iopbot run` on the same file would poll too (409s from
    Telegram) and wait on the file's lock. Said once at start; PostgreSQL is for several workers."""
    if running.engine.dialect.name != "sqlite":
        return
    recent = timedelta(seconds=max(10.0, 3 * running.ctx.settings.schedule.tick_seconds))
    async with running.ctx.sessionmaker() as session:
        others = [w for w in await workers(session, running.ctx.clock.now())
                  if w.id != registry.id and w.seen_age < recent]
    if others:
        log.warning("another iopbot run (%s) uses this SQLite database: SQLite serves one process; "
                    "run several workers on PostgreSQL", ", ".join(w.id for w in others))


async def _until(stop: asyncio.Event) -> None:
    await stop.wait()


# How often a worker writes its scheduler tick to worker_processes (at most).
TICK_RECORD_SECONDS = 1.0


def _tick_recorder(registry: WorkerRegistry) -> Callable[[datetime], Awaitable[None]]:
    """A planner that records the scheduler's tick, at most once a TICK_RECORD_SECONDS; registered
    last, so a tick whose planners failed (the database is down) is not recorded."""
    last = -TICK_RECORD_SECONDS

    async def record(now: datetime) -> None:
        nonlocal last
        moment = asyncio.get_running_loop().time()
        if moment - last >= TICK_RECORD_SECONDS:
            try:
                await registry.ticked(now)
            except Exception as exc:  # only a report: never hold up the claim that follows in this tick
                log.warning("could not record this worker's scheduler tick (%s)", type(exc).__name__)
                return
            last = moment

    return record


async def run(settings: Settings, mode: str | None = None) -> None:
    """The bot in one of three roles (`mode`, default `[telegram] mode`): "webhook" serves the
    webhook, "polling" polls when elected (one process per bot), "worker" only works the schedule.
    Every role runs the scheduler."""
    role = WorkerMode(mode or settings.telegram.mode)
    require_token(settings)
    require_program_name(settings)
    running = await assemble(settings)
    settle_after_assembly()
    me = await running.bot.get_me()
    registry = WorkerRegistry(running.ctx.sessionmaker, role)
    await registry.register(running.ctx.clock.now())
    running.worker.add_planner("worker-tick", _tick_recorder(registry))
    await _warn_if_sqlite_is_shared(running, registry)
    log.info("bot @%s (id %s) starting in %s mode as worker %s", me.username, me.id, role.value, registry.id)
    worker_task = asyncio.create_task(running.worker.run_forever(), name="scheduler")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    election: PollerElection | None = None
    if role is WorkerMode.WEBHOOK:
        main = asyncio.create_task(_serve_webhook(running, stop, registry.id), name="webhook")
    elif role is WorkerMode.POLLING:
        election = PollerElection(running.engine)
        main = asyncio.create_task(_poll_while_elected(running, election, registry, stop), name="poller")
    else:
        log.info("schedule only: this worker neither polls nor serves the webhook")
        main = asyncio.create_task(_until(stop), name="schedule-only")
    # GET /healthz on [health] listen_port for the roles without a webhook server (nothing when 0).
    health = None if role is WorkerMode.WEBHOOK else \
        asyncio.create_task(serve_health(running.ctx, registry.id), name="healthz")
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping")
    stop.set()
    if main not in done:
        # Polling stops fetching and finishes what it fetched; the webhook closes its port and
        # finishes the updates in progress.
        await asyncio.wait({main}, timeout=STOP_GRACE_SECONDS + 5)
    if election is not None:
        await election.release()
    # The scheduler claims nothing more, hands back what it has not started, finishes what it has.
    running.worker.stop()
    await asyncio.wait({worker_task}, timeout=STOP_GRACE_SECONDS)
    for task in (main, worker_task, stopper, *([health] if health else [])):
        task.cancel()
    for task in (main, worker_task, *([health] if health else [])):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    # A blocked participant marked, a failed delivery written down, before the pool closes.
    try:
        await asyncio.wait_for(running.sender.settled(), STOP_GRACE_SECONDS)
    except TimeoutError:
        log.error("stopping: delivery problems not written down in %s s were left", STOP_GRACE_SECONDS)
    ledger = running.ctx.parts.find(ReplyLedger)
    if ledger is not None:
        await ledger.close()  # the reply rows of replies sent are deleted before the pool closes
    await registry.unregister()
    if running.semantic is not None:
        await running.semantic.aclose()
    if main in done and not main.cancelled() and main.exception():
        raise main.exception()  # type: ignore[misc]
    await running.bot.session.close()
    await running.engine.dispose()
