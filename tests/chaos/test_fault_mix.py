"""Telegram misbehaving: 20% of sends answered 429 (retry_after 1 s), 5% 5xx, 2% timeouts.

The real bot process, Telegram's limits on (30/s overall, 1/s per chat) and the bot's own at their
defaults (25/s, one message per 1.05 s per chat). Under the fault mix, at once:
- 8 participants each type a script of 9 commands and notes, all sent before the first reply;
- a wave of 100 check-ins goes out, and 8 notices to one clinician (concurrent sends to one chat);
- a participant writes a crisis message (crisis reply, then the clinician's page).
Everything must arrive; each participant's replies must come in the order they wrote (a timed-out
send may arrive twice: Telegram had it, the client gave up; only first copies are ordered); and no
message may reach a chat that was told retry_after before that time has passed (the local Bot API
counts such "early retries").

The faults are in what the bot sends, not in its database: this runs on SQLite only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from bench.support import seed
from bot.db.engine import make_engine, make_sessionmaker
from bot.db.models import ActionStatus, ScheduledAction
from bot.sandbox.botapi import BotAPIControl, FakeBotAPI, FaultMix, RateLimits
from tests.chaos.conftest import due_checkins, report
from tests.support.databases import create_postgres_database, create_sqlite_database
from tests.support.e2e import BotProcess

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

SCRIPT = [
    ("/help", "Here is what I can do"),
    ("I went for a walk today and it helped", "saved this for your care team"),
    ("/settings", "Your settings"),
    ("/sessions", "no sessions in the next 7 days"),
    ("/pause", "Check-ins and reminders are paused"),
    ("/resume", "Welcome back"),
    ("/checkin", "Time for your daily check-in"),
    ("/mydata", "everything we store about you"),
    ("/stop", "Do you want to stop using this bot"),
]
SCRIPTED, WAVE, NOTICES = 8, 100, 8
CONFIG = """
    [telegram]
    request_timeout_seconds = 2.0
    [sender]
    per_chat_interval_seconds = 1.05
    messages_per_second = 25.0
    backoff_base_seconds = 0.2
    backoff_max_seconds = 2.0
"""
MIX = FaultMix(seed=20261125, retry_after_percent=20, server_error_percent=5, timeout_percent=2, retry_after=1,
               timeout_delay=3.0)


def shown(message: dict[str, Any]) -> str:
    return (message.get("visible_text") or "") + (message.get("caption") or "")


async def staff_notices(url: str, staff_id: int, participant_ids: list[int]) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC) - timedelta(seconds=2)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            await session.execute(insert(ScheduledAction), [
                dict(kind="staff_notice", key=f"chaos-notice:{pid}", due_at=now, intended_at=now,
                     status=ActionStatus.PENDING, participant_id=pid, staff_id=staff_id,
                     payload={"notice": "generic"}, created_at=now, attempts=0)
                for pid in participant_ids])
            await session.commit()
    finally:
        await engine.dispose()


def early_after_being_told(api: FakeBotAPI) -> list[dict[str, Any]]:
    """Sends to a chat before a retry_after the bot had received for it had passed.

    The server counts an "early retry" against any ban it set, also one set by its answer to a
    request held by a timeout fault: the bot had given up on that request and never saw the 429.
    Here only answers the bot received count (a 429 answered at once: at arrival + retry_after)."""
    told_until: dict[int, float] = {}
    early: list[dict[str, Any]] = []
    for r in sorted(api.requests(), key=lambda r: r["at"]):
        chat = r["chat_id"]
        if chat is None or r["method"] not in ("sendMessage", "sendDocument", "sendPhoto"):
            continue
        if r["at"] < told_until.get(chat, float("-inf")):
            early.append({k: r[k] for k in ("chat_id", "method", "at", "outcome")})
        if r["retry_after"] and r["fault"] != "timeout":
            told_until[chat] = max(told_until.get(chat, float("-inf")), r["at"] + r["retry_after"])
    return early


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_fault_mix_delivers_everything_in_order_and_never_early(
        db_kind: str, tmp_path: Path, control: BotAPIControl, botapi: FakeBotAPI) -> None:
    url = create_postgres_database() if db_kind == "postgres" else create_sqlite_database(tmp_path)
    botapi.set_rate_limits(RateLimits())  # Telegram's: 30/s, 1/s per chat
    people = await seed(url, participants=SCRIPTED + 1 + WAVE, staff=1)
    scripted = people.participant_users[:SCRIPTED]
    crisis_user = people.participant_users[SCRIPTED]
    wave_ids = people.participant_ids[SCRIPTED + 1:]
    wave_users = people.participant_users[SCRIPTED + 1:]
    clinician = people.staff_users[0]
    # The faults and the due rows are there before the bot starts (starting sends nothing).
    botapi.set_fault_mix(MIX)
    await due_checkins(url, wave_ids)
    await staff_notices(url, people.staff_ids[0], wave_ids[:NOTICES])
    proc = BotProcess(tmp_path, botapi.base_url or "", url, extra_config=CONFIG)
    proc.start()
    started = time.monotonic()
    try:
        await proc.wait_ready(control, timeout=60)
        for user in scripted:
            for text, _ in SCRIPT:
                botapi.inject_message(user, text, first_name="Sam")
        botapi.inject_message(crisis_user, "i want to kill myself", first_name="Sam")

        def complete() -> bool:
            if not all(len(botapi.chat(u)["messages"]) >= 1 for u in wave_users):
                return False
            staff_texts = [shown(m) for m in botapi.chat(clinician)["messages"]]
            if sum("Safety alert" in t for t in staff_texts) < 1 or len(staff_texts) < NOTICES + 1:
                return False
            if not any("988lifeline.org" in shown(m) for m in botapi.chat(crisis_user)["messages"]):
                return False
            return all(all(any(marker in shown(m) for m in botapi.chat(u)["messages"]) for _, marker in SCRIPT)
                       for u in scripted)

        deadline = time.monotonic() + 150
        while not complete() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another process's work
            await asyncio.sleep(0.25)
        await asyncio.sleep(3.5)  # a send held by a "timeout" fault lands after the client gave up
    finally:
        botapi.set_fault_mix(None)
        await proc.stop_async()
    elapsed = time.monotonic() - started

    faults = Counter(r["fault"] for r in botapi.requests() if r["fault"])
    stats = botapi.stats()
    out_of_order: dict[int, list[int]] = {}
    missing: dict[int, list[str]] = {}
    duplicates = 0
    for user in scripted:
        order: list[int] = []
        for message in botapi.chat(user)["messages"]:
            index = next((i for i, (_, marker) in enumerate(SCRIPT) if marker in shown(message)), None)
            if index is None:
                continue
            if index in order:
                duplicates += 1
            else:
                order.append(index)
        if order != sorted(order):
            out_of_order[user] = order
        gone = [SCRIPT[i][0] for i in range(len(SCRIPT)) if i not in order]
        if gone:
            missing[user] = gone
    wave_counts = [len(botapi.chat(u)["messages"]) for u in wave_users]
    staff_texts = [shown(m) for m in botapi.chat(clinician)["messages"]]
    duplicates += sum(n - 1 for n in wave_counts if n > 1)
    def last_send(chats: list[int]) -> float:
        times = [r["at"] for r in botapi.requests() if r["chat_id"] in set(chats) and r["outcome"] == "ok"]
        return round(max(times) - started, 1) if times else -1.0

    report(f"fault mix: 20% 429 (retry_after 1 s), 5% 5xx, 2% timeouts ({db_kind})", {
        "last delivery, s after start (scripted / wave / clinician)":
            f"{last_send(scripted)} / {last_send(wave_users)} / {last_send([clinician])}",
        "faults injected": dict(faults),
        "sendMessage/sendDocument calls": sum(stats["by_method"].get(m, {}).get(o, 0)
                                             for m in ("sendMessage", "sendDocument")
                                             for o in stats["by_method"].get(m, {})),
        "scripted replies missing": sum(len(v) for v in missing.values()),
        "chats with replies out of order": len(out_of_order),
        "wave check-ins delivered": f"{sum(n >= 1 for n in wave_counts)}/{WAVE}",
        "clinician: notices + page": f"{len(staff_texts)} (expected >= {NOTICES + 1})",
        "duplicate copies (timeouts delivered late)": duplicates,
        "early retries (sent before a retry_after the bot was told)": len(early_after_being_told(botapi)),
        "  as the server counts them (also bans set by answers the bot": "",
        "  had given up waiting for, after a timeout)": stats["early_retries"],
        "seconds": round(elapsed, 1),
    })
    assert not missing, missing
    assert not out_of_order, out_of_order
    assert all(n >= 1 for n in wave_counts)
    assert sum("Safety alert" in t for t in staff_texts) >= 1 and len(staff_texts) >= NOTICES + 1
    # One page; a second copy only where a timed-out send had in fact arrived.
    assert sum("Safety alert" in t for t in staff_texts) <= 1 + faults.get("timeout", 0), staff_texts
    assert any("988lifeline.org" in shown(m) for m in botapi.chat(crisis_user)["messages"])
    assert duplicates <= faults.get("timeout", 0), "copies beyond what timed-out sends explain"
    early = early_after_being_told(botapi)
    assert not early, f"a chat was sent to before the retry_after it was told had passed: {early}"
