"""SIGTERM (a deploy, a systemd restart) in the middle of a wave: the bot stops within the grace
period, hands back the rows it had claimed but not sent, and the next process sends them at once —
not after the two-minute lease — with no duplicate.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.support import seed
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI
from tests.chaos.conftest import due_checkins, local_today, report, rows_by_status
from tests.support.databases import create_sqlite_database
from tests.support.e2e import BotProcess

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

WAVE = 300
CONFIG = """
    [sender]
    messages_per_second = 25.0
    [schedule]
    lease_seconds = 120.0
"""


async def test_sigterm_mid_wave_hands_rows_back(tmp_path: Path, botapi: FakeBotAPI,
                                                control: BotAPIControl) -> None:
    url = create_sqlite_database(tmp_path)
    people = await seed(url, participants=WAVE, staff=3)
    chats = people.participant_users
    await due_checkins(url, people.participant_ids)
    proc = BotProcess(tmp_path, botapi.base_url or "", url, extra_config=CONFIG)

    def delivered() -> list[int]:
        return [len(botapi.chat(c)["messages"]) for c in chats]

    try:
        proc.start()
        await proc.wait_ready(control, timeout=60)
        deadline = time.monotonic() + 60
        while sum(1 for n in delivered() if n) < 50 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stopping_at = time.monotonic()
        await asyncio.to_thread(proc.stop)  # SIGTERM; SIGKILL if not gone in 10 s
        stop_seconds = time.monotonic() - stopping_at
        said_stopping = "stopping" in proc.log_text()
        sent_before = sum(1 for n in delivered() if n)
        left = await rows_by_status(url, key_suffix=f":{local_today()}", participant_ids=people.participant_ids)

        restarted_at = time.monotonic()
        proc.start()
        await proc.wait_ready(control, timeout=60)
        deadline = time.monotonic() + 60
        while sum(1 for n in delivered() if n) < WAVE and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        finished_seconds = time.monotonic() - restarted_at
    finally:
        await proc.stop_async()
    counts = delivered()
    report("SIGTERM during a 300-message wave (sqlite, lease 120 s)", {
        "seconds from SIGTERM to exit": round(stop_seconds, 1),
        "logged 'stopping' (a clean stop, not the SIGKILL after 10 s)": said_stopping,
        "check-ins sent before the stop": sent_before,
        "rows by status after the stop": left,
        "seconds from restart to the whole wave out": round(finished_seconds, 1),
        "lost": sum(1 for n in counts if n == 0),
        "duplicates": sum(n - 1 for n in counts if n > 1),
    })
    assert said_stopping and stop_seconds < 9, "the bot did not stop by itself on SIGTERM"
    assert left.get("claimed", 0) == 0, "rows left claimed: the next process waits out their lease"
    assert all(n >= 1 for n in counts), "check-ins lost"
    assert sum(n - 1 for n in counts if n > 1) == 0, "a graceful stop must not duplicate anything"
