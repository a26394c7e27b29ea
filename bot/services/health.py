"""Is this bot healthy? The one answer behind `iopbot healthz` and GET /healthz.

Healthy means two things an operator cannot see from outside: the database answers (SELECT 1),
and some worker's scheduler ticked recently (`[health] max_tick_age_seconds`). A scheduler that
stopped ticking sends no check-in, reminder or page while the process looks alive; a database that
does not answer loses every update. Nothing here names a person or shows a secret: the answer is
safe to hand to a load balancer or a monitoring system.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings

# How long one check may take before it counts as "the database does not answer". Docker's
# HEALTHCHECK and a load balancer's probe have their own timeouts; stay well inside them.
CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class HealthReport:
    """The outcome of one check. `problem` is one line for a person, empty when healthy."""

    database_ok: bool
    tick_age_seconds: float | None  # None: no tick recorded yet, or the database did not answer
    max_tick_age_seconds: float
    problem: str = ""

    @property
    def healthy(self) -> bool:
        return not self.problem

    def summary(self) -> str:
        """One line: what `iopbot healthz` prints."""
        if not self.healthy:
            return f"unhealthy: {self.problem}"
        return (f"healthy: database answers, last scheduler tick {self.tick_age_seconds:.0f} s ago "
                f"(limit {self.max_tick_age_seconds:g} s)")

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "database": "ok" if self.database_ok else "unreachable",
            "last_tick_age_seconds": None if self.tick_age_seconds is None else round(self.tick_age_seconds, 1),
            "max_tick_age_seconds": self.max_tick_age_seconds,
            "problem": self.problem or None,
        }


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file a URL names when it does not exist (SQLite would silently create an empty
    one: a health check must never do that), else None."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


async def check_health(sessionmaker: async_sessionmaker[AsyncSession], now: datetime, max_tick_age_seconds: float,
                       *, worker_id: str | None = None,
                       answer_within: float = CHECK_TIMEOUT_SECONDS) -> HealthReport:
    """SELECT 1, then the age of the last scheduler tick, each within `answer_within` seconds: of any
    worker (`iopbot healthz`: is the bot as a whole working its schedule?), or of the worker named
    (a worker's own /healthz: a load balancer takes out the one whose scheduler is stuck)."""
    whose = "no worker's" if worker_id is None else "this worker's"
    from bot.services.scheduling.workers import last_tick_age

    limit = max_tick_age_seconds
    async with sessionmaker() as session:
        try:
            await asyncio.wait_for(session.execute(text("SELECT 1")), answer_within)
        except TimeoutError:
            return HealthReport(False, None, limit, f"the database did not answer within {answer_within:g} s")
        except Exception as exc:  # any driver's error: what matters is that it did not answer
            return HealthReport(False, None, limit, f"the database did not answer: {_one_line(exc)}")
        try:
            tick_age = await asyncio.wait_for(last_tick_age(session, now, worker_id=worker_id), answer_within)
        except TimeoutError:
            return HealthReport(True, None, limit, f"reading the last scheduler tick took over {answer_within:g} s")
        except Exception as exc:
            return HealthReport(True, None, limit, f"could not read the last scheduler tick ({_one_line(exc)}); "
                                                   "is the schema up to date (`iopbot db upgrade`)?")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.rollback(), answer_within)  # read only: nothing to keep
    if tick_age is None:
        return HealthReport(True, None, limit, f"{whose} scheduler has not ticked yet: is an `iopbot run` "
                                                "worker running, and did it just start?")
    age = tick_age.total_seconds()
    if age > limit:
        last = "the last scheduler tick" if worker_id is None else "this worker's last scheduler tick"
        return HealthReport(True, age, limit, f"{last} was {age:.0f} s ago (limit {limit:g} s): "
                                              "the scheduler is stuck or no worker is running")
    return HealthReport(True, age, limit)


def http_answer(report: HealthReport) -> tuple[int, dict[str, Any]]:
    """What GET /healthz answers: 200 when healthy, 503 otherwise, with the report as JSON."""
    return (200 if report.healthy else 503), report.as_json()


async def healthz(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: datetime, *,
                  worker_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """The handler behind GET /healthz, without any web framework: (status code, JSON body).
    `worker_id`: judge that worker's own scheduler tick, not the newest of all workers."""
    report = await check_health(sessionmaker, now, settings.health.max_tick_age_seconds, worker_id=worker_id)
    return http_answer(report)


async def check_database_url(settings: Settings, now: datetime) -> HealthReport:
    """`iopbot healthz`: the same check from outside the bot, on a pool of its own that it closes.
    Never creates or migrates anything."""
    from bot.db.engine import make_engine, make_sessionmaker

    limit = settings.health.max_tick_age_seconds
    missing = missing_sqlite_file(settings.database.url)
    if missing is not None:
        return HealthReport(False, None, limit, f"the database file {missing} does not exist")
    engine: AsyncEngine = make_engine(settings.database.url)
    # Bounded as a whole too: closing a connection to a database that hangs may hang as well.
    whole = 2 * CHECK_TIMEOUT_SECONDS + 1
    try:
        return await asyncio.wait_for(check_health(make_sessionmaker(engine), now, limit), whole)
    except TimeoutError:
        return HealthReport(False, None, limit, f"the database did not answer within {whole:g} s")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine.dispose(), CHECK_TIMEOUT_SECONDS)


def _one_line(exc: BaseException) -> str:
    """An exception as one short line, without a password that a driver may have put in it."""
    import re

    message = " ".join(str(exc).split()) or type(exc).__name__
    message = re.sub(r"://([^:/@\s]+):[^@/\s]*@", r"://\1:***@", message)
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{type(exc).__name__}: {message}"
