"""What the benchmarks share: the local Bot API in its own process, databases, seeding, a bot
assembled in this process, and a description of the machine the figures came from.

The local Bot API (bot/sandbox/botapi.py) runs as a separate process, like Telegram is a separate
computer: its CPU time is not counted against the bot's event loop. Times compared across the two
processes use `time.monotonic()`, which on Linux is one system-wide clock (CLOCK_MONOTONIC), so
the server's request log (`at`) and the benchmark's own stamps are on the same time line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(REPO))

from bot.sandbox.botapi import DEFAULT_TOKEN, BotAPIControl  # noqa: E402

log = logging.getLogger("bench")

STAFF_USER_BASE = 1_000_000
PARTICIPANT_USER_BASE = 2_000_000


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What an operator needs to judge the figures: CPUs, model, load, Python, platform."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
        mem_gb = round(mem_kb / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gb": mem_gb,
        "load_average_1m": round(load[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else 0.0


# --------------------------------------------------------------------------------------------
# The local Bot API, in a process of its own
# --------------------------------------------------------------------------------------------


class BotAPIProcess:
    """`python -m bot.sandbox.botapi` on a free port; `control` talks to its control API."""

    def __init__(self, *, rate_limits: bool = True) -> None:
        self.rate_limits = rate_limits
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.control: BotAPIControl | None = None

    async def __aenter__(self) -> BotAPIProcess:
        args = [sys.executable, "-m", "bot.sandbox.botapi", "--port", "0"]
        if not self.rate_limits:
            args.append("--no-rate-limits")
        self.proc = subprocess.Popen(  # noqa: ASYNC220, S603 - our own server, started once, fixed arguments
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if not line.startswith("http"):
            raise RuntimeError(f"the local Bot API did not start: {line!r}")
        self.base_url = line.strip()
        self.control = BotAPIControl(self.base_url)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.control is not None:
            await self.control.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------

_pg_server: Any = None


def postgres_available() -> bool:
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return True
    try:
        import pgserver  # noqa: F401
    except ImportError:
        return False
    return True


def _postgres_admin_url() -> str:
    global _pg_server
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return os.environ["DATABASE_URL"]
    if _pg_server is None:
        import pgserver

        _pg_server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="iopbot-bench-pg-")), cleanup_mode="delete")
    return str(_pg_server.get_uri())


async def new_database(kind: str, workdir: Path) -> str:
    """A new, migrated database of `kind` ("sqlite" or "postgres"); returns its SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    from bot.db.engine import upgrade_async

    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        admin = make_url(_postgres_admin_url())
        name = f"iopbot_bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(user=admin.username, password=admin.password, host=admin.host or
                                     admin.query.get("host"), port=admin.port, database=admin.database or "postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = admin.set(database=name, drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    await upgrade_async(url)
    return url


# --------------------------------------------------------------------------------------------
# Seeding: enrolled people straight in the database (what onboarding leaves behind)
# --------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    staff_ids: list[int] = field(default_factory=list)
    staff_users: list[int] = field(default_factory=list)
    participant_ids: list[int] = field(default_factory=list)
    participant_users: list[int] = field(default_factory=list)


def distant_checkin_time(timezone: str, now: datetime | None = None) -> str:
    """A daily check-in time at least 5 hours from now and outside the seeded quiet hours
    (22:00-07:00), so the planner's own check-ins never fall due while a benchmark or test runs."""
    from zoneinfo import ZoneInfo

    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    for ahead in (12, 11, 13, 10, 14, 9, 15, 8, 16, 7, 17, 6, 18, 5, 19):
        hour = (local.hour + ahead) % 24
        if 7 <= hour < 22:
            return f"{hour:02d}:00"
    return "12:00"


async def seed(url: str, *, participants: int, staff: int = 1, user_offset: int = 0, checkin_time: str | None = None,
               timezone: str = "America/New_York", now: datetime | None = None, chunk: int = 5000) -> Seeded:
    """`staff` therapists and `participants` active participants (assigned round-robin), inserted
    in chunks with Core statements so 100,000 of them take seconds and little memory. Their
    check-in time defaults to one far from now (see distant_checkin_time)."""
    from sqlalchemy import insert, select

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import Participant, ParticipantStatus, Staff

    now = now or datetime.now(UTC)
    checkin_time = checkin_time or distant_checkin_time(timezone, now)
    engine = make_engine(url)
    out = Seeded()
    try:
        async with make_sessionmaker(engine)() as session:
            staff_rows = [dict(alias=f"dr-{user_offset + i}", role="therapist", telegram_user_id=STAFF_USER_BASE
                               + user_offset + i, chat_id=STAFF_USER_BASE + user_offset + i, locale="en",
                               active=True, on_call=False, created_at=now) for i in range(staff)]
            if staff_rows:
                await session.execute(insert(Staff), staff_rows)
            first_staff = STAFF_USER_BASE + user_offset
            staff_found = (await session.execute(
                select(Staff.id, Staff.telegram_user_id).where(Staff.telegram_user_id >= first_staff,
                                                               Staff.telegram_user_id < first_staff + staff)
                .order_by(Staff.telegram_user_id))).all()
            out.staff_ids = [r.id for r in staff_found]
            out.staff_users = [r.telegram_user_id for r in staff_found]
            first = PARTICIPANT_USER_BASE + user_offset
            for start in range(0, participants, chunk):
                rows = [dict(alias=f"P-{first + i}", telegram_user_id=first + i, chat_id=first + i,
                             status=ParticipantStatus.ACTIVE, locale="en", timezone=timezone,
                             checkin_time=checkin_time, quiet_start="22:00", quiet_end="07:00",
                             therapist_id=out.staff_ids[i % len(out.staff_ids)], consent_version="bench",
                             consented_at=now, created_at=now)
                        for i in range(start, min(participants, start + chunk))]
                await session.execute(insert(Participant), rows)
            await session.commit()
            found = (await session.execute(
                select(Participant.id, Participant.telegram_user_id)
                .where(Participant.telegram_user_id >= first, Participant.telegram_user_id < first + participants)
                .order_by(Participant.telegram_user_id))).all()
            out.participant_ids = [r.id for r in found]
            out.participant_users = [r.telegram_user_id for r in found]
    finally:
        await engine.dispose()
    return out


# --------------------------------------------------------------------------------------------
# Settings and a bot assembled in this process
# --------------------------------------------------------------------------------------------


# `python -m bench --no-semantic`: the semantic safety layer off in every benchmark that does not
# choose for itself (the inbound one measures both); None: as config.toml ships it.
SEMANTIC: bool | None = None


def bench_settings(api_base: str, db_url: str, **changes: dict[str, Any]) -> Any:
    """config.toml's settings pointed at the local Bot API and `db_url`; `changes` maps a section
    name to the fields to change in it, e.g. sender={"messages_per_second": 100.0}."""
    from bot.config import load_settings

    if SEMANTIC is not None and "semantic" not in changes:
        from bot.config import Settings

        if "semantic" in Settings.__dataclass_fields__:
            changes = {**changes, "semantic": {"enabled": SEMANTIC}}

    s = load_settings(REPO / "config.toml", env={"BOT_TOKEN": DEFAULT_TOKEN})
    s = s.replace(
        telegram=dataclasses.replace(s.telegram, api_base=api_base, polling_timeout_seconds=1,
                                     request_timeout_seconds=10.0),
        database=dataclasses.replace(s.database, url=db_url),
        # No daily read: it is planned an hour after the check-in time and would add messages to
        # the chats the benchmarks count, depending on the hour the benchmark runs.
        content=dataclasses.replace(s.content, directory=str(REPO / "content"), drip_every_days=0),
        base_dir=REPO,
    )
    for section, fields in changes.items():
        s = s.replace(**{section: dataclasses.replace(getattr(s, section), **fields)})
    return s


@dataclass
class LiveBot:
    """`bot.runtime.assemble` plus what `iopbot run` starts: the scheduler loop and polling."""

    running: Any
    tasks: list[asyncio.Task[Any]]

    @property
    def ctx(self) -> Any:
        return self.running.ctx


@contextlib.asynccontextmanager
async def live_bot(settings: Any, *, clock: Any = None, polling: bool = True, worker: bool = True,
                   prepare: bool = True, settle: bool = True) -> AsyncIterator[LiveBot]:
    """Run the assembled bot in this event loop. With `prepare`, one scheduler tick runs before
    polling starts, so the planners' first pass (check-ins for every participant) is not measured."""
    from bot.runtime import assemble, settle_after_assembly

    running = await assemble(settings, clock, migrate=False)
    if settle:
        settle_after_assembly()  # as `iopbot run` does after assembling
    tasks: list[asyncio.Task[Any]] = []
    try:
        if prepare:
            await running.worker.tick()
        if worker:
            tasks.append(asyncio.create_task(running.worker.run_forever(), name="bench-scheduler"))
        if polling:
            # As `iopbot run` polls: the offset confirms a batch only once it is committed.
            from bot.telegram.polling import CommittedOffsetPoller

            dp = running.dispatcher
            poller = CommittedOffsetPoller(dp, running.bot, timeout=settings.telegram.polling_timeout_seconds,
                                           allowed_updates=dp.resolve_used_update_types())
            tasks.append(asyncio.create_task(poller.run(), name="bench-polling"))
        yield LiveBot(running, tasks)
    finally:
        if polling:
            poller.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(tasks[-1], 10)
            await asyncio.sleep(1.2)  # > polling_timeout: the server's pending getUpdates has ended
            # Updates still being handled (an overloaded run leaves hundreds) must not run on into
            # the next benchmark, against a closed database.
            pending = list(poller.in_progress)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        second = running.second_opinion
        if second is not None:
            with contextlib.suppress(Exception):
                await second.aclose()
        from bot.services.scheduling.replies import ReplyLedger

        ledger = running.ctx.parts.find(ReplyLedger)
        if ledger is not None:
            await ledger.close()
        # The routers are module-level objects: detach them so the next benchmark can assemble again.
        for router in running.dispatcher.sub_routers:
            router._parent_router = None
        running.dispatcher.sub_routers.clear()
        await running.bot.session.close()
        await running.engine.dispose()


async def stop_polling(dp: Any, task: asyncio.Task[Any]) -> None:
    """Stop aiogram's polling the way it expects. Cancelling the start_polling task instead
    leaves its inner polling task running (it would go on answering updates meant for the next
    bot); after stopping, wait out the long poll the server may still hold for it."""
    with contextlib.suppress(RuntimeError):  # not polling (yet, or any more)
        await dp.stop_polling()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, 10)
    await asyncio.sleep(1.2)  # > polling_timeout: the server's pending getUpdates has ended


# --------------------------------------------------------------------------------------------
# Waiting on the server, and small statistics
# --------------------------------------------------------------------------------------------


def sends_ok(stats: dict[str, Any], method: str = "sendMessage") -> int:
    return int(stats.get("by_method", {}).get(method, {}).get("ok", 0))


async def wait_for_sends(control: BotAPIControl, count: int, timeout: float, method: str = "sendMessage",  # noqa: ASYNC109
                         every: float = 0.1) -> int:
    """Wait until the server has answered `count` calls of `method` with 200; returns how many it had."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = sends_ok(await control.stats(), method)
        if seen >= count:
            return seen
        await asyncio.sleep(every)
    return seen


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), nearest-rank: an observed value, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


class ErrorCounter(logging.Handler):
    """Counts WARNING and ERROR records (the bot's own loggers) while a benchmark runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.warnings = 0
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        else:
            self.warnings += 1


@contextlib.contextmanager
def counting_log_records() -> Iterator[ErrorCounter]:
    counter = ErrorCounter()
    root = logging.getLogger()
    root.addHandler(counter)
    try:
        yield counter
    finally:
        root.removeHandler(counter)
