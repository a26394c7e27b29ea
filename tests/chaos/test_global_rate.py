"""One send rate for the whole bot: three worker processes on one PostgreSQL, one wave, Telegram's limits.

Three real processes (each its own sender, Bot and connection pool, as three `iopbot run` workers
have) send a wave to the local Bot API, which enforces Telegram's flood limits (30/s, 1/s per chat
with a burst of three) and answers 429 to anything faster. Each process sends two messages to each
of the same 20 chats, as the outbox does (`sender.turn()` before each), so every chat gets six
messages from three processes at once; in the middle of the wave each process sends urgent
messages (a crisis reply, a page). Measured at the server:
- no 429, and never more than Telegram's 30 (the server's limit) in any one-second window; the
  ordinary sends alone never more than the configured 25, plus what a slot may be used late
  (`LATE` × the rate), plus one (arrival jitter);
- each urgent send arrived within 200 ms of being asked for;
- no chat got more than three messages in any one second.
Then an urgent storm: each process pages `STORM` clinicians at once (crisis replies and pages go
ahead of everything, but they too are capped for the whole bot, not per worker): at the server,
never more than the configured burst and rate of urgent sends in any second (`BURST` + `RATE`,
plus one for arrival jitter), no 429, each process's first one within 200 ms. Per worker, the
three together sent the 60 in about 0.6 s, twice Telegram's limit.
Real time (the processes are separate), about 12 s with their start-up.

    python -m tests.chaos.test_global_rate child BASE_URL DB_URL INDEX   (what the test starts)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bot.telegram.send_budget import LATE

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

PROCESSES = 3
CHATS = list(range(7000, 7020))
PER_CHAT_PER_PROCESS = 2
URGENT_AT = (1.5, 2.5)  # seconds after the start, in each process: the wave takes ~5 s
RATE = 25.0  # [sender] messages_per_second, as shipped
BURST = 5  # [sender] burst, as shipped
STORM = 20  # urgent sends per process at once, to chats of their own


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window of `window` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# -- the child: one worker's sender --------------------------------------------------------------


async def _child(base_url: str, db_url: str, index: int) -> None:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    from bot.config import SenderSettings
    from bot.db.engine import make_engine
    from bot.sandbox.botapi import DEFAULT_TOKEN
    from bot.telegram.sender import SenderMiddleware, install_send_budget, urgent_sending

    engine = make_engine(db_url)
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url), timeout=10)
    sender = SenderMiddleware(SenderSettings(messages_per_second=RATE))
    session.middleware(sender)
    bot = Bot(DEFAULT_TOKEN, session=session)
    budget = install_send_budget(sender, engine)
    assert budget is not None
    # Warm the pool and the prepared statements: the urgent lane must not pay a first connect.
    await budget.store.prune()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go": all three start together
    started = time.monotonic()
    urgent: list[tuple[int, float]] = []

    async def ordinary(chat_id: int, n: int) -> None:
        async with sender.turn():  # as the outbox does, before its transaction
            await bot.send_message(chat_id, f"p{index} #{n}")

    async def crisis(at: float, chat_id: int) -> None:
        await asyncio.sleep(at - (time.monotonic() - started))
        asked = time.monotonic()
        urgent.append((chat_id, asked))
        with urgent_sending():
            await bot.send_message(chat_id, "urgent")

    storm: list[tuple[int, float]] = []

    async def page(chat_id: int) -> None:
        storm.append((chat_id, time.monotonic()))
        with urgent_sending():
            await bot.send_message(chat_id, "page")

    jobs = [ordinary(chat, n) for n in range(PER_CHAT_PER_PROCESS) for chat in CHATS]
    jobs += [crisis(at, 9000 + index * 10 + k) for k, at in enumerate(URGENT_AT)]
    try:
        await asyncio.gather(*jobs)
        await budget.settle()
        print(json.dumps({"urgent": urgent, "sender": sender.stats, "budget": dict(budget.stats)}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "storm": all three at once
        await asyncio.gather(*(page(9500 + index * 100 + k) for k in range(STORM)))
        await budget.settle()
    finally:
        await bot.session.close()
        await engine.dispose()
    print(json.dumps({"storm": storm, "budget": dict(budget.stats)}), flush=True)


# -- the test ------------------------------------------------------------------------------------


async def test_three_processes_share_one_rate_with_the_urgent_lane_ahead() -> None:
    from bot.sandbox.botapi import FakeBotAPI, RateLimits
    from tests.support.databases import create_postgres_database

    db_url = create_postgres_database()
    api = FakeBotAPI(rate_limits=RateLimits())  # Telegram's: 30/s (burst 30), 1/s per chat (burst 3)
    await api.start()
    children: list[asyncio.subprocess.Process] = []
    try:
        for index in range(PROCESSES):
            children.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.chaos.test_global_rate", "child", api.base_url or "", db_url,
                str(index), cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            assert line.strip() == b"ready", line
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        outputs = []
        for child in children:
            assert child.stdout is not None
            outputs.append(json.loads(await asyncio.wait_for(child.stdout.readline(), 60)))
        wave = api.requests(method="sendMessage")
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"storm\n")
            await child.stdin.drain()
        storms = []
        for child in children:
            assert child.stdout is not None
            storms.append(json.loads(await asyncio.wait_for(child.stdout.readline(), 60)))
            assert await asyncio.wait_for(child.wait(), 10) == 0
        storm_log = api.requests(method="sendMessage")[len(wave):]
        storm_429 = api.stats()["too_many_requests"]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await api.stop()

    log = wave
    ok = [r for r in log if r["outcome"] == "ok"]
    urgent_chats = {chat for out in outputs for chat, _ in out["urgent"]}
    ordinary = [r["at"] for r in ok if r["chat_id"] not in urgent_chats]
    every = [r["at"] for r in ok]
    per_chat: dict[int, list[float]] = defaultdict(list)
    for r in ok:
        per_chat[r["chat_id"]].append(r["at"])
    arrival = {r["chat_id"]: r["at"] for r in ok if r["chat_id"] in urgent_chats}
    latency_ms = sorted(round((arrival[chat] - asked) * 1000, 1) for out in outputs for chat, asked in out["urgent"])
    span = max(ordinary) - min(ordinary)
    figures: dict[str, Any] = {
        "sends": len(ok), "429": api.stats()["too_many_requests"], "early_retries": api.stats()["early_retries"],
        "max_per_second_all": max_in_window(every), "max_per_second_ordinary": max_in_window(ordinary),
        "achieved_per_second": round((len(ordinary) - 1) / span, 2), "urgent_latency_ms": latency_ms,
        "max_per_chat_per_second": max(max_in_window(t) for t in per_chat.values()),
        "budget": [out["budget"] for out in outputs],
    }
    paged = [r for r in storm_log if r["outcome"] == "ok"]
    asked = {chat: at for out in storms for chat, at in out["storm"]}
    firsts = [min(asked[r["chat_id"]] for r in paged if r["chat_id"] // 100 == 95 + i) for i in range(PROCESSES)]
    first_arrivals = [min(r["at"] for r in paged if r["chat_id"] // 100 == 95 + i) for i in range(PROCESSES)]
    storm_figures: dict[str, Any] = {
        "sends": len(paged), "429": storm_429 - figures["429"],
        "max_per_second": max_in_window([r["at"] for r in paged]),
        "seconds": round(max(r["at"] for r in paged) - min(asked.values()), 2),
        "first_latency_ms": [round((a - q) * 1000, 1) for a, q in zip(first_arrivals, firsts, strict=True)],
        "waits": [out["budget"].get("urgent_waits", 0) for out in storms],
    }
    print("\nglobal rate, 3 processes:", json.dumps(figures))
    print("urgent storm, 3 processes:", json.dumps(storm_figures))

    expected = PROCESSES * (len(CHATS) * PER_CHAT_PER_PROCESS + len(URGENT_AT))
    assert len(ok) == len(log) == expected, "every message delivered at the first try"
    assert figures["429"] == 0 and figures["early_retries"] == 0
    assert figures["max_per_second_all"] <= RateLimits().global_per_second
    assert figures["max_per_second_ordinary"] <= RATE * (1 + LATE) + 1
    assert max(latency_ms) <= 200, latency_ms
    assert figures["max_per_chat_per_second"] <= 3

    # The urgent storm: capped for the whole bot (per worker, 60 would have gone in ~0.6 s).
    assert len(paged) == len(storm_log) == PROCESSES * STORM, "every page delivered at the first try"
    assert storm_figures["429"] == 0
    assert storm_figures["max_per_second"] <= BURST + RATE + 1
    assert storm_figures["seconds"] >= (PROCESSES * STORM - BURST) / RATE * 0.9
    assert max(storm_figures["first_latency_ms"]) <= 200, storm_figures


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    asyncio.run(_child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
