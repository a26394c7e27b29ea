"""Outbound wave: N participants' check-ins due in the same minute, sent against Telegram's limits.

    python -m bench.outbound_wave [--quick]

The rows are created straight in the database (one `checkin` row per participant, due a few
seconds ago), then the scheduler loop of an assembled bot sends them: the real `send_checkin`
(opens the day's FlowRun, renders the first question with its buttons, plans the nudge) through
the real sender middleware. The local Bot API, in its own process, enforces the limits as token
buckets and answers 429 to anything faster.

Figures: achieved messages/s between the first and the last send of the wave (server arrival
times) over the configured `[sender] messages_per_second`; the number of 429s and early retries;
how long the wave took from its due time; and, with both limits off, how fast the outbox can go on
this machine at all (its headroom over Telegram's limit).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.support import (
    BotAPIProcess,
    bench_settings,
    counting_log_records,
    live_bot,
    load_average,
    new_database,
    seed,
    wait_for_sends,
)


async def create_due_checkins(url: str, participant_ids: list[int], due: datetime, timezone: str) -> None:
    from sqlalchemy import insert

    from bot.db.engine import make_engine, make_sessionmaker
    from bot.db.models import ActionStatus, ScheduledAction
    from bot.services.checkins.service import checkin_key

    day = due.astimezone(ZoneInfo(timezone)).date()
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            for start in range(0, len(participant_ids), 5000):
                await session.execute(insert(ScheduledAction), [
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
    out["load_after"] = load_average()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(run_async(quick))


def main() -> None:
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))


if __name__ == "__main__":
    main()
