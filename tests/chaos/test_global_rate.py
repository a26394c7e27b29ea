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
Real time (the processes are separate), about 8 s with their start-up.

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

    jobs = [ordinary(chat, n) for n in range(PER_CHAT_PER_PROCESS) for chat in CHATS]
    jobs += [crisis(at, 9000 + index * 10 + k) for k, at in enumerate(URGENT_AT)]
    try:
        await asyncio.gather(*jobs)
        await budget.settle()
    finally:
        await bot.session.close()
        await engine.dispose()
    print(json.dumps({"urgent": urgent, "sender": sender.stats, "budget": dict(budget.stats)}), flush=True)


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
            assert await asyncio.wait_for(child.wait(), 10) == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await api.stop()

    log = api.requests(method="sendMessage")
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
    print("\nglobal rate, 3 processes:", json.dumps(figures))

    expected = PROCESSES * (len(CHATS) * PER_CHAT_PER_PROCESS + len(URGENT_AT))
    assert len(ok) == len(log) == expected, "every message delivered at the first try"
    assert figures["429"] == 0 and figures["early_retries"] == 0
    assert figures["max_per_second_all"] <= RateLimits().global_per_second
    assert figures["max_per_second_ordinary"] <= RATE * (1 + LATE) + 1
    assert max(latency_ms) <= 200, latency_ms
    assert figures["max_per_chat_per_second"] <= 3


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    asyncio.run(_child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
