"""Scheduler scale: time per row to materialize check-ins and to claim them when due, and the
memory that takes, for 1,000, 10,000 and 100,000 participants.

    python -m bench.scheduler_scale [--quick] [--postgres] [--full]

Each size runs in a child process forked from this one (so one size's leftovers do not count
against the next, and aiogram is imported only once), on a new database:

- seed N active participants (Core inserts, not measured);
- materialize: `CheckinPlanner.plan(now)`, the planner the scheduler tick runs (bot/services/
  checkin_planner.py): every participant's missing check-in rows for the next `plan_days` days,
  in pages of 1,000 participants. Time per row created;
- re-plan: the same call again when nothing is missing (what every `plan_interval_minutes` costs);
- claim: the clock moves past today's check-in time, and `claim_due` (the outbox's claim, batches
  of `[schedule] batch_size` with a lease) runs until nothing is due, each batch then marked sent
  with one UPDATE, as the worker does after Telegram's 200. Sending itself is measured by
  bench/outbound_wave.py. Time per row claimed.

Memory is the peak resident set during each phase above the resident set at its start (Linux
VmHWM, reset through /proc/self/clear_refs before the phase): what the phase adds at its worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.support import REPO, load_average, new_database, postgres_available, seed

START = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # midnight in New York: today's 09:00 is ahead
DUE = datetime(2026, 3, 2, 14, 10, tzinfo=UTC)  # 09:10 in New York: today's check-ins (+ jitter) are due


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Phase:
    """Wall time and peak resident memory growth of one phase."""

    def __enter__(self) -> _Phase:
        import gc

        gc.collect()
        self.peak_reset = _reset_peak()
        self.rss0 = _status_kb("VmRSS")
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.peak_mb = round(max(0, _status_kb("VmHWM") - self.rss0) / 1024, 1) if self.peak_reset else None


async def _one_size(kind: str, participants: int, workdir: str) -> dict[str, Any]:
    from sqlalchemy import update

    from bot.clock import ManualClock
    from bot.config import load_settings
    from bot.content.i18n import Texts
    from bot.context import AppContext
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import ActionStatus, ScheduledAction
    from bot.services.checkins.planner import CheckinPlanner
    from bot.services.scheduling.outbox import claim_due

    url = await new_database(kind, Path(workdir))
    seeded_at = time.perf_counter()
    await seed(url, participants=participants, staff=max(1, participants // 50), now=START, checkin_time="09:00")
    seed_seconds = time.perf_counter() - seeded_at
    settings = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "1:bench"})
    settings = settings.replace(database=dataclasses.replace(settings.database, url=url))
    engine = make_engine(url)
    clock = ManualClock(START)
    ctx = AppContext(settings=settings, clock=clock, texts=Texts.load(REPO / "content"),
                     sessionmaker=make_sessionmaker(engine))
    planner = CheckinPlanner(ctx)
    out: dict[str, Any] = {"participants": participants, "kind": kind, "seed_seconds": round(seed_seconds, 1)}
    try:
        with _Phase() as plan:
            figures = await planner.plan(START)
        with _Phase() as replan:
            again = await planner.plan(START)
        clock.set(DUE)
        s = settings.schedule
        claimed = 0
        with _Phase() as claim:
            while True:
                async with ctx.sessionmaker() as session:
                    rows = await claim_due(session, DUE, timedelta(seconds=s.lease_seconds), s.batch_size)
                    if not rows:
                        break
                    await session.execute(
                        update(ScheduledAction).where(ScheduledAction.id.in_([r.id for r in rows]))
                        .values(status=ActionStatus.SENT, sent_at=DUE, lease_until=None))
                    await session.commit()
                claimed += len(rows)
    finally:
        await engine.dispose()
    out.update(
        rows_created=figures.created, plan_seconds=round(plan.seconds, 2),
        plan_us_per_row=round(plan.seconds / max(1, figures.created) * 1e6, 1), plan_peak_mb=plan.peak_mb,
        replan_seconds=round(replan.seconds, 2), replan_created=again.created,
        replan_us_per_participant=round(replan.seconds / participants * 1e6, 1), replan_peak_mb=replan.peak_mb,
        rows_claimed=claimed, claim_seconds=round(claim.seconds, 2),
        claim_us_per_row=round(claim.seconds / max(1, claimed) * 1e6, 1), claim_peak_mb=claim.peak_mb,
    )
    return out


def _child(kind: str, participants: int, workdir: str, conn: Any) -> None:
    try:
        conn.send(asyncio.run(_one_size(kind, participants, workdir)))
    except BaseException as exc:  # reported, not raised: the parent prints the table anyway
        conn.send({"participants": participants, "kind": kind, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def measure(kind: str, participants: int, workdir: str, timeout: float = 600) -> dict[str, Any]:
    """One size in a forked child process (fork: the imports are already paid for)."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    proc = context.Process(target=_child, args=(kind, participants, workdir, child))
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            proc.kill()
            return {"participants": participants, "kind": kind, "error": f"no result within {timeout}s"}
        result: dict[str, Any] = parent.recv()
    except EOFError:
        result = {"participants": participants, "kind": kind, "error": "the child process died"}
    finally:
        proc.join(10)
        with contextlib.suppress(Exception):
            proc.kill()
    return result


def run(quick: bool = False, postgres: bool | None = None, full: bool = False) -> dict[str, Any]:
    """SQLite at every size; PostgreSQL at the two smaller ones (all three with `full`: ~2 more
    minutes, over the 10-minute budget of `python -m bench`)."""
    # Imported here, before forking, so every child starts with them loaded.
    import bot.services.checkins.planner
    import bot.services.scheduling.outbox  # noqa: F401

    sizes = [200, 1_000] if quick else [1_000, 10_000, 100_000]
    use_pg = (not quick and postgres_available()) if postgres is None else postgres
    out: dict[str, Any] = {"load_before": load_average(), "sqlite": [], "postgres": []}
    if use_pg:
        from bench.support import _postgres_admin_url

        _postgres_admin_url()  # start the server here, not in (and with the lifetime of) a child
    with tempfile.TemporaryDirectory(prefix="iopbot-bench-sched-") as tmp:
        for n in sizes:
            out["sqlite"].append(measure("sqlite", n, tmp))
        if use_pg:
            for n in (sizes if full or quick else sizes[:2]):
                out["postgres"].append(measure("postgres", n, tmp))
    for kind in ("sqlite", "postgres"):
        rows = [r for r in out[kind] if "error" not in r]
        if len(rows) >= 2:
            out[f"{kind}_plan_growth"] = round(rows[-1]["plan_us_per_row"] / rows[0]["plan_us_per_row"], 2)
            out[f"{kind}_claim_growth"] = round(rows[-1]["claim_us_per_row"] / rows[0]["claim_us_per_row"], 2)
    out["load_after"] = load_average()
    return out


def main() -> None:
    import json

    print(json.dumps(run(quick="--quick" in sys.argv, postgres=True if "--postgres" in sys.argv else None,
                         full="--full" in sys.argv), indent=2))


if __name__ == "__main__":
    main()
