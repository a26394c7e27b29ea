"""Inbound: updates per second through the whole pipeline, against a bare aiogram echo bot.

    python -m bench.inbound [--quick]

Both bots poll the same local Bot API process over HTTP (its rate limits off: this measures the
bot, not Telegram's limits). N messages from enrolled participants are queued before polling
starts; the time runs from the bot's first getUpdates to the server's receipt of the last reply.

- bare: a Dispatcher with one handler, `message.answer(message.text)`. No database, no middleware.
- full: `bot.runtime.assemble()` as `iopbot run` wires it, with the scheduler loop running:
  deduplication by update_id, the safety gate (rules), the unit of work, the actor lookup, the
  participant's note stored (encrypted column), the reply sent after commit through the sender
  middleware (its limits raised out of the way, as the server's are).

Each run reports updates per second, and for the full pipeline the SQL statements per update
(SQLAlchemy's before_cursor_execute, counted from the first poll) and this process's CPU time per
update.

The texts are everyday check-in chatter that the rules do not flag (a flagged one would add a
crisis reply and an alert, measured by bench/crisis_latency.py instead). The bare bot runs before
and after the full ones; both runs are reported, since the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support import (
    BotAPIProcess,
    bench_settings,
    counting_log_records,
    live_bot,
    load_average,
    new_database,
    postgres_available,
    seed,
    stop_polling,
    wait_for_sends,
)


def unflagged_texts() -> list[str]:
    from bench.safety_throughput import BENIGN
    from bench.support import REPO
    from bot.safety.rules import SafetyRules

    rules = SafetyRules.load(REPO / "content")
    return [t for t in BENIGN if not rules.assess(t, "en").flagged]


async def _queue_messages(control: Any, users: list[int], count: int) -> None:
    texts = itertools.cycle(unflagged_texts())
    people = itertools.cycle(users)
    batch = 50
    for start in range(0, count, batch):
        await asyncio.gather(*(control.inject_message(next(people), next(texts), first_name="Sam")
                               for _ in range(min(batch, count - start))))


async def _measure(control: Any, count: int, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Wait for `count` replies; the rate from the first getUpdates to the last reply's arrival,
    and this process's CPU time per update (all its threads: SQLite's run in threads of their own),
    which a shared machine's other work disturbs less than the rate."""
    cpu_before = time.process_time()
    got = await wait_for_sends(control, count, timeout)
    cpu_ms = round((time.process_time() - cpu_before) * 1000 / count, 2)
    requests = await control.requests()
    # From the first getUpdates the server answered (a retry after a refused one is not counted).
    polls = [r["at"] for r in requests if r["method"] == "getUpdates" and r["outcome"] == "ok"]
    sends = sorted(r["at"] for r in requests if r["method"] == "sendMessage" and r["outcome"] == "ok")
    if got < count or not polls or not sends:
        return {"updates": count, "replies": got, "updates_per_second": 0.0, "complete": False}
    seconds = sends[min(count, len(sends)) - 1] - polls[0]
    return {"updates": count, "replies": got, "seconds": round(seconds, 3),
            "updates_per_second": round(count / seconds, 1), "cpu_ms_per_update": cpu_ms, "complete": True}


async def bare_echo(api: BotAPIProcess, users: list[int], count: int) -> dict[str, Any]:
    from aiogram import Bot, Dispatcher, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    from bot.sandbox.botapi import DEFAULT_TOKEN

    assert api.control is not None
    await api.control.reset()
    await _queue_messages(api.control, users, count)
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "-")

    dp = Dispatcher()
    dp.include_router(router)
    bot = Bot(DEFAULT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        return await _measure(api.control, count, timeout=120)
    finally:
        await stop_polling(dp, task)
        await bot.session.close()


async def full_pipeline(api: BotAPIProcess, kind: str, workdir: Path, participants: int,
                        count: int, *, semantic: bool = False) -> dict[str, Any]:
    assert api.control is not None
    url = await new_database(kind, workdir)
    people = await seed(url, participants=participants, staff=max(1, participants // 25))
    changes: dict[str, Any] = {
        # Out of the way, like the server's limits: this measures the pipeline, not the limits.
        "sender": {"messages_per_second": 1_000_000.0, "burst": 1_000_000, "per_chat_interval_seconds": 0.000001},
    }
    if _has_semantic():
        changes["semantic"] = {"enabled": semantic}
    settings = bench_settings(api.base_url, url, **changes)
    await api.control.reset()
    await _queue_messages(api.control, people.participant_users, count)
    with counting_log_records() as logged:
        # live_bot runs one scheduler tick before polling (the planners' first pass: every
        # participant's check-ins); the time starts at the first getUpdates, after it.
        async with live_bot(settings) as live:
            statements = _count_statements(live.running.engine)
            result = await _measure(api.control, count, timeout=300)
            stored = await _count_notes(settings)
    result.update(kind=kind, participants=participants, notes_stored=stored, errors_logged=logged.errors,
                  sql_statements_per_update=round(statements[0] / count, 1), semantic=semantic)
    return result


def _has_semantic() -> bool:
    """Whether this code has the semantic safety layer (`[semantic]` in the settings)."""
    from bot.config import Settings

    return "semantic" in Settings.__dataclass_fields__


def _count_statements(engine: Any) -> list[int]:
    """Count the SQL statements the bot runs from now on (one list cell, updated in place)."""
    from sqlalchemy import event

    counter = [0]

    def count(*_: Any) -> None:
        counter[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return counter


async def _count_notes(settings: Any) -> int:
    from sqlalchemy import func, select

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import InboundMessage

    engine = make_engine(settings.database.url)
    try:
        async with make_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(InboundMessage)) or 0)
    finally:
        await engine.dispose()


async def run_async(quick: bool = False) -> dict[str, Any]:
    count = 100 if quick else 1000
    participants = 20 if quick else 200
    kinds = ["sqlite"] + (["postgres"] if postgres_available() and not quick else [])
    out: dict[str, Any] = {"updates_per_run": count, "participants": participants, "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="iopbot-bench-inbound-") as tmp:
        async with BotAPIProcess(rate_limits=False) as api:
            users = [5_000_000 + i for i in range(participants)]
            bare = [await bare_echo(api, users, count)]
            for kind in kinds:
                # The pipeline alone ([semantic] enabled = false): what issue 16's targets are about.
                out[kind] = await full_pipeline(api, kind, Path(tmp), participants, count)
                if _has_semantic():
                    # As shipped: the semantic safety layer reads every participant's message.
                    out[f"{kind}_semantic"] = await full_pipeline(api, kind, Path(tmp), participants, count,
                                                                  semantic=True)
            if not quick:
                bare.append(await bare_echo(api, users, count))
    rates = [b["updates_per_second"] for b in bare if b["complete"]]
    out["bare_runs"] = [b["updates_per_second"] for b in bare]
    out["bare_cpu_ms_per_update"] = [b.get("cpu_ms_per_update") for b in bare]
    out["bare_updates_per_second"] = round(sum(rates) / len(rates), 1) if rates else 0.0
    for kind in [k for k in out if k.startswith(("sqlite", "postgres"))]:
        full = out[kind]["updates_per_second"]
        out[kind]["ratio_to_bare"] = round(full / out["bare_updates_per_second"], 3) if rates else None
    out["load_after"] = load_average()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(run_async(quick))


def main() -> None:
    import json

    figures = run(quick="--quick" in sys.argv)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
