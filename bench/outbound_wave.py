"""Outbound wave: N participants' check-ins due in the same minute, sent against Telegram's limits.

    python -m bench.outbound_wave [--quick]
    python -m bench --only outbound

The rows are created straight in the database (one `checkin` row per participant, due a few
seconds ago), then the scheduler loop of an assembled bot sends them: the real `send_checkin`
(opens the day's FlowRun, renders the first question with its buttons, plans the nudge) through
the real sender middleware. The local Bot API, in its own process, enforces the limits as token
buckets and answers 429 to anything faster.

Figures: achieved messages/s between the first and the last send of the wave (server arrival
times) over the configured `[sender] messages_per_second`; the number of 429s and early retries;
how long the wave took from its due time; and, with both limits off, how fast the outbox can go on
this machine at all (its headroom over Telegram's limit).

Several workers (PostgreSQL): the same wave sent by one worker process and by three (each a bot
assembled in a process of its own, as `iopbot run` workers are; only the scheduler runs), side by
side, with the shared send budget (bot/telegram/send_budget.py); and, to show what it prevents,
three workers each pacing itself alone (the budget left out). Figures as above, plus the most
messages the server saw in any one second (Telegram's limit: 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.support import (
    REPO,
    BotAPIProcess,
    bench_settings,
    counting_log_records,
    live_bot,
    load_average,
    new_database,
    postgres_available,
    seed,
    wait_for_sends,
)


async def create_due_checkins(url: str, participant_ids: list[int], due: datetime, timezone: str) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import ActionStatus, ScheduledAction
    from bot.services.checkins.service import checkin_key

    day = due.astimezone(ZoneInfo(timezone)).date()
    engine = make_engine(url)
    try:
        insert = pg_insert if url.startswith("postgresql") else sqlite_insert
        async with make_sessionmaker(engine)() as session:
            for start in range(0, len(participant_ids), 5000):
                # A row the planner already made for today (the bench's day just began in New York)
                # is made due now, not added twice.
                stmt = insert(ScheduledAction)
                stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={
                    "due_at": stmt.excluded.due_at, "intended_at": stmt.excluded.intended_at,
                    "status": stmt.excluded.status})
                await session.execute(stmt, [
                    dict(kind="checkin", key=checkin_key(pid, day), due_at=due, intended_at=due,
                         status=ActionStatus.PENDING, participant_id=pid, payload={"date": day.isoformat()},
                         created_at=due, attempts=0)
                    for pid in participant_ids[start:start + 5000]])
            await session.commit()
    finally:
        await engine.dispose()


async def wave(api: BotAPIProcess, workdir: Path, *, rows: int, configured: float | None,
               server: float | None, kind: str = "sqlite", user_offset: int = 0) -> dict[str, Any]:
    """Send a wave of `rows` check-ins; `configured`/`server` None = that limit off."""
    assert api.control is not None
    url = await new_database(kind, workdir)
    timezone = "America/New_York"
    people = await seed(url, participants=rows, staff=max(1, rows // 100), user_offset=user_offset,
                        timezone=timezone)
    due = datetime.now(UTC) - timedelta(seconds=5)
    await create_due_checkins(url, people.participant_ids, due, timezone)
    await api.control.reset()
    if server is None:
        await api.control.set_rate_limits(enabled=False)
    else:
        # Telegram's shape (about 30/s, 1/s per chat), the global rate scaled when raised.
        await api.control.set_rate_limits(enabled=True, global_per_second=server, global_burst=server,
                                          per_chat_per_second=1.0, per_chat_burst=3.0)
    sender = ({"messages_per_second": configured} if configured is not None else
              {"messages_per_second": 1_000_000.0, "burst": 1_000_000, "per_chat_interval_seconds": 0.000001})
    settings = bench_settings(api.base_url, url, sender=sender)
    budget = 120 + rows / (configured or 50.0) * 2
    with counting_log_records() as logged:
        async with live_bot(settings, polling=False, prepare=False):
            got = await wait_for_sends(api.control, rows, budget, every=0.5)
    chats = set(people.participant_users)
    log = [r for r in await api.control.requests(method="sendMessage") if r["chat_id"] in chats]
    ok = sorted(r["at"] for r in log if r["outcome"] == "ok")
    stats = await api.control.stats()
    delivered_chats = {r["chat_id"] for r in log if r["outcome"] == "ok"}
    result: dict[str, Any] = {
        "rows": rows, "kind": kind, "configured_per_second": configured, "server_per_second": server,
        "delivered": len(delivered_chats), "sends_ok": len(ok), "complete": got >= rows,
        "too_many_requests": stats["too_many_requests"], "early_retries": stats["early_retries"],
        "errors_logged": logged.errors,
    }
    if len(ok) >= 2:
        span = ok[-1] - ok[0]
        achieved = (len(ok) - 1) / span if span > 0 else float("inf")
        result.update(seconds=round(span, 2), achieved_per_second=round(achieved, 2))
        if configured:
            result["ratio_to_configured"] = round(achieved / configured, 3)
    return result


def max_in_one_second(times: list[float]) -> int:
    """The most arrivals in any half-open one-second window."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _worker_process(config: dict[str, Any]) -> None:
    """One worker: a bot assembled in this process, its scheduler running, no polling (started by
    `workers_wave` as `python -m bench.outbound_wave --worker JSON`; stops when stdin closes)."""
    import logging

    from bot.telegram.sender import install_send_budget

    logging.basicConfig(level=logging.WARNING, filename=config["log"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = bench_settings(config["api_base"], config["db_url"],
                              sender={"messages_per_second": config["configured"]})
    with counting_log_records() as logged:
        async with live_bot(settings, polling=False, prepare=False) as live:
            sender = live.running.sender
            if config["shared"] and sender.budget is None:
                install_send_budget(sender, live.running.engine)  # if the composition root did not
            elif not config["shared"]:
                sender.budget = None  # each worker alone: what two workers did before the shared budget
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes it
            budget = dict(sender.budget.stats) if sender.budget is not None else None
    print(json.dumps({"sender": sender.stats, "budget": budget, "errors_logged": logged.errors}), flush=True)


async def workers_wave(api: BotAPIProcess, workdir: Path, *, rows: int, workers: int, configured: float,
                       shared: bool = True, user_offset: int = 0) -> dict[str, Any]:
    """Send a wave of `rows` check-ins from `workers` worker processes on one PostgreSQL, against
    Telegram's limits (30/s, 1/s per chat) at the server."""
    assert api.control is not None
    url = await new_database("postgres", workdir)
    timezone = "America/New_York"
    people = await seed(url, participants=rows, staff=max(1, rows // 100), user_offset=user_offset,
                        timezone=timezone)
    await api.control.reset()
    await api.control.set_rate_limits(enabled=True, global_per_second=30.0, global_burst=30.0,
                                      per_chat_per_second=1.0, per_chat_burst=3.0)
    config = {"api_base": api.base_url, "db_url": url, "configured": configured, "shared": shared,
              "log": str(workdir / f"workers-{workers}-{'shared' if shared else 'alone'}.log")}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs: list[asyncio.subprocess.Process] = []
    outputs: list[dict[str, Any]] = []
    try:
        for _ in range(workers):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.outbound_wave", "--worker", json.dumps(config),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                cwd=REPO, env=env))
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 180)
            if line.strip() != b"ready":
                raise RuntimeError(f"a worker did not start: {line[:200]!r}")
        # Due once every worker is up: each finds them at its next tick.
        await create_due_checkins(url, people.participant_ids, datetime.now(UTC) - timedelta(seconds=5), timezone)
        got = await wait_for_sends(api.control, rows, 120 + rows / configured * 3, every=0.5)
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            with contextlib.suppress(ValueError):
                outputs.append(json.loads(line))
            await asyncio.wait_for(proc.wait(), 30)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    chats = set(people.participant_users)
    log = [r for r in await api.control.requests(method="sendMessage") if r["chat_id"] in chats]
    ok = sorted(r["at"] for r in log if r["outcome"] == "ok")
    stats = await api.control.stats()
    result: dict[str, Any] = {
        "rows": rows, "kind": "postgres", "workers": workers, "shared_budget": shared,
        "configured_per_second": configured, "server_per_second": 30.0,
        "delivered": len({r["chat_id"] for r in log if r["outcome"] == "ok"}), "sends_ok": len(ok),
        "complete": got >= rows, "too_many_requests": stats["too_many_requests"],
        "early_retries": stats["early_retries"], "max_in_one_second": max_in_one_second(ok),
        "errors_logged": sum(o.get("errors_logged", 0) for o in outputs),
        "budget_round_trips": sum((o.get("budget") or {}).get("round_trips", 0) for o in outputs),
        "slots_booked": sum((o.get("budget") or {}).get("booked", 0) for o in outputs),
        "slots_dropped": sum((o.get("budget") or {}).get("dropped", 0) for o in outputs),
    }
    if len(ok) >= 2:
        span = ok[-1] - ok[0]
        achieved = (len(ok) - 1) / span if span > 0 else float("inf")
        result.update(seconds=round(span, 2), achieved_per_second=round(achieved, 2),
                      ratio_to_configured=round(achieved / configured, 3))
    return result


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The table's rows (python -m bench)."""
    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,.3g}" if isinstance(value, float) and abs(value) < 10 else (
            f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value))

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    t, c = r["telegram_limits"], r["capacity"]
    out = [
        ("outbound", f"wave of {t['rows']:,} check-ins, achieved msg/s (configured {t['configured_per_second']:g}, "
         f"server {t['server_per_second']:g})", fmt(t.get("achieved_per_second")), "", "-"),
        ("outbound", "achieved/configured", fmt(t.get("ratio_to_configured")), ">= 0.95",
         verdict(t.get("ratio_to_configured", 0) >= 0.95 and t["complete"])),
        ("outbound", "429 answers (early retries)", f"{t['too_many_requests']} ({t['early_retries']})", "0",
         verdict(t["too_many_requests"] == 0)),
        ("outbound", f"delivered / rows (wave took {fmt(t.get('seconds'))} s)", f"{t['delivered']:,}/{t['rows']:,}",
         "all", verdict(t["delivered"] == t["rows"])),
        ("outbound", f"capacity, no limits: {c['rows']:,} check-ins, msg/s", fmt(c.get("achieved_per_second")),
         "", "-"),
    ]
    for w in r.get("workers", []):
        who = (f"{w['workers']} worker{'s' if w['workers'] > 1 else ''}, postgres, "
               + ("shared budget" if w["shared_budget"] else "each alone (no shared budget)"))
        target = w["shared_budget"]
        out += [
            ("outbound", f"{who}: {w['rows']:,} check-ins, achieved msg/s (max in one second)",
             f"{fmt(w.get('achieved_per_second'))} ({w['max_in_one_second']})", "<= 30 in a second" if target else "",
             verdict(w["max_in_one_second"] <= 30) if target else "-"),
            ("outbound", f"{who}: achieved/configured", fmt(w.get("ratio_to_configured")),
             ">= 0.95" if target else "",
             verdict(w.get("ratio_to_configured", 0) >= 0.95 and w["complete"]) if target else "-"),
            ("outbound", f"{who}: 429 answers (early retries), delivered/rows",
             f"{w['too_many_requests']} ({w['early_retries']}), {w['delivered']:,}/{w['rows']:,}",
             "0, all" if target else "",
             verdict(w["too_many_requests"] == 0 and w["delivered"] == w["rows"]) if target else "-"),
        ]
    return out


async def run_async(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="iopbot-bench-wave-") as tmp:
        async with BotAPIProcess() as api:
            if quick:
                out["telegram_limits"] = await wave(api, Path(tmp), rows=75, configured=25.0, server=30.0)
                out["capacity"] = await wave(api, Path(tmp), rows=100, configured=None, server=None,
                                             user_offset=100_000)
            else:
                out["telegram_limits"] = await wave(api, Path(tmp), rows=2000, configured=25.0, server=30.0)
                out["capacity"] = await wave(api, Path(tmp), rows=1500, configured=None, server=None,
                                             user_offset=100_000)
            if postgres_available():
                size = 150 if quick else 1000
                out["workers"] = [
                    await workers_wave(api, Path(tmp), rows=size, workers=n, configured=25.0, shared=shared,
                                       user_offset=200_000 + 10_000 * i)
                    for i, (n, shared) in enumerate(((1, True), (3, True), (3, False)))]
    out["load_after"] = load_average()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(run_async(quick))


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(_worker_process(json.loads(sys.argv[2])))
        return
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))


if __name__ == "__main__":
    main()
