"""Crisis latency: from a participant's crisis message to the crisis reply and to the clinician's
alert, while ~100 other updates per second arrive; then the same with the LLM second opinion on
and its endpoint hanging.

    python -m bench.crisis_latency [--quick]

The bot is assembled in this process and polls the local Bot API (its own process, Telegram's
limits on: about 30/s overall, 1/s per chat); the sender runs at the configured 25/s. The
background load is everyday chatter from 200 other participants at ~100/s; each gets a reply, so
replies pile up behind the 25/s limit, which is what the urgent lane is for.

Each trial: a participant not yet flagged writes a crisis message. Times are from just before the
message is handed to the local Bot API (what Telegram would timestamp) to the moment the crisis
reply, and the first page to their clinician, reach the server (the server's request log).
`time.monotonic()` is system-wide on Linux, so the two processes' times compare.
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
    percentile,
    seed,
)

CRISIS_TEXTS = ["i want to kill myself", "I want to end my life", "i just want to die",
                "everyone would be better off without me", "I dont wanna be here anymore"]
CLINICIANS = 20
BACKGROUND_PEOPLE = 200


async def _background(control: Any, users: list[int], per_second: float, stop: asyncio.Event,
                      sent: list[int]) -> None:
    """Inject everyday messages at a steady rate until `stop` (fire-and-forget, so no drift)."""
    from bench.inbound import unflagged_texts

    texts, people = itertools.cycle(unflagged_texts()), itertools.cycle(users)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()
    next_at = loop.time()
    while not stop.is_set():
        next_at += 1 / per_second
        task = asyncio.create_task(control.inject_message(next(people), next(texts), first_name="Sam"))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent[0] += 1
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    await asyncio.gather(*pending, return_exceptions=True)


async def _wait_for_pages(control: Any, clinicians: list[int], drain: float) -> None:
    want: dict[int, int] = {}
    for clinician in clinicians:
        want[clinician] = want.get(clinician, 0) + 1
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline:
        counts = await asyncio.gather(*(control.chat(c) for c in want))
        if all(sum("Safety alert" in (m["visible_text"] or "") for m in chat["messages"]) >= want[c]
               for c, chat in zip(want, counts, strict=True)):
            return
        await asyncio.sleep(0.25)


async def _variant(api: BotAPIProcess, workdir: Path, *, trials: int, gap: float, background: float,
                   llm_base_url: str | None, drain: float = 60.0, kind: str = "sqlite") -> dict[str, Any]:
    control = api.control
    assert control is not None
    url = await new_database(kind, workdir)
    people = await seed(url, participants=trials + BACKGROUND_PEOPLE, staff=CLINICIANS)
    crisis_users = people.participant_users[:trials]
    background_users = people.participant_users[trials:]
    therapist_user = {u: people.staff_users[i % CLINICIANS] for i, u in enumerate(people.participant_users)}
    await control.reset()
    await control.set_rate_limits(enabled=True, global_per_second=30.0, global_burst=30.0,
                                  per_chat_per_second=1.0, per_chat_burst=3.0)
    changes: dict[str, Any] = {}
    if llm_base_url:
        changes["llm"] = {"enabled": True, "base_url": llm_base_url, "mode": "moderation",
                          "model": "omni-moderation-latest", "timeout_seconds": 3.0}
    settings = bench_settings(api.base_url, url, **changes)
    stop, injected = asyncio.Event(), [0]
    started: dict[int, float] = {}
    with counting_log_records() as logged:
        async with live_bot(settings) as live:
            load = asyncio.create_task(_background(control, background_users, background, stop, injected))
            # Each trial's participant has written before (so the bot knows them: with the LLM
            # on, their crisis message is also sent for a second opinion, as in real use).
            from bench.inbound import unflagged_texts

            hello = unflagged_texts()[0]
            for user in crisis_users:
                await control.inject_message(user, hello, first_name="Sam")
            await asyncio.sleep(2.0)  # the load is running before the first trial
            t_start = time.monotonic()
            for i, user in enumerate(crisis_users):
                started[user] = time.monotonic()
                await control.inject_message(user, CRISIS_TEXTS[i % len(CRISIS_TEXTS)], first_name="Sam")
                await asyncio.sleep(gap)
            # The last pages go out (the load goes on meanwhile), or give up after `drain` s.
            await _wait_for_pages(control, [therapist_user[u] for u in crisis_users], drain)
            stop.set()
            await load
            elapsed = time.monotonic() - t_start
            llm_calls = getattr(live.running.second_opinion, "stats", None)
    requests = await control.requests(method="sendMessage")
    at = {(r["chat_id"], r["message_id"]): r["at"] for r in requests if r["outcome"] == "ok"}
    reply_ms: list[float] = []
    alert_ms: list[float] = []
    missing_replies = missing_alerts = 0
    for user in crisis_users:
        chat = await control.chat(user)
        # The crisis reply is the one with the chat link (the note reply names 988 too).
        crisis = next((m for m in chat["messages"] if "988lifeline.org" in (m["visible_text"] or "")), None)
        if crisis is None or (user, crisis["message_id"]) not in at:
            missing_replies += 1
        else:
            reply_ms.append((at[(user, crisis["message_id"])] - started[user]) * 1000)
    alias_of = {u: f"P-{u}" for u in crisis_users}
    for clinician in set(therapist_user[u] for u in crisis_users):
        chat = await control.chat(clinician)
        for user in [u for u in crisis_users if therapist_user[u] == clinician]:
            page = next((m for m in chat["messages"] if alias_of[user] in (m["visible_text"] or "")
                         and "Safety alert" in (m["visible_text"] or "")), None)
            if page is None or (clinician, page["message_id"]) not in at:
                missing_alerts += 1
            else:
                alert_ms.append((at[(clinician, page["message_id"])] - started[user]) * 1000)
    background_replies = sum(1 for r in requests if r["outcome"] == "ok" and r["chat_id"] in set(background_users))
    stats = await control.stats()

    # A reply or page still missing when the drain time ran out counts as later than that.
    reply_ms += [float("inf")] * missing_replies
    alert_ms += [float("inf")] * missing_alerts

    def ms(values: list[float], q: float) -> float | str | None:
        value = percentile(values, q)
        if value == float("inf"):
            return f">{(gap * trials + drain) * 1000:.0f}"
        return None if value is None else round(value, 1)

    return {
        "kind": kind, "trials": trials, "reply_p50_ms": ms(reply_ms, 50), "reply_p99_ms": ms(reply_ms, 99),
        "reply_max_ms": ms(reply_ms, 100), "alert_p50_ms": ms(alert_ms, 50), "alert_p99_ms": ms(alert_ms, 99),
        "alert_max_ms": ms(alert_ms, 100), "missing_replies": missing_replies, "missing_alerts": missing_alerts,
        "background_per_second": round(injected[0] / (elapsed + 2.0), 1),
        "background_injected": injected[0], "background_replied": background_replies,
        "too_many_requests": stats["too_many_requests"], "errors_logged": logged.errors,
        "llm_calls": getattr(llm_calls, "calls", None),
    }


# (database, background updates/s, LLM endpoint hanging): the load first, then a load
# this machine's bot can sustain (see the inbound figures), where the crisis path itself shows.
VARIANTS = [("sqlite", 100.0, False), ("postgres", 100.0, False), ("postgres", 100.0, True),
            ("sqlite", 20.0, False), ("postgres", 20.0, False), ("postgres", 20.0, True)]
QUICK_VARIANTS = [("sqlite", 20.0, True)]


async def run_async(quick: bool = False) -> dict[str, Any]:
    from bench.support import postgres_available
    from tests.support.openai_stub import OpenAIStub

    trials, gap, drain = (5, 0.3, 15.0) if quick else (30, 0.25, 15.0)
    variants = QUICK_VARIANTS if quick else [v for v in VARIANTS if v[0] == "sqlite" or postgres_available()]
    out: dict[str, Any] = {"load_before": load_average(), "trials": trials, "drain_seconds": drain, "variants": []}
    with tempfile.TemporaryDirectory(prefix="iopbot-bench-crisis-") as tmp:
        async with BotAPIProcess() as api:
            stub = OpenAIStub()
            async with stub as base_url:
                stub.hang(60.0)  # longer than [llm] timeout_seconds (3 s): every call times out
                for kind, background, hanging in variants:
                    result = await _variant(api, Path(tmp), trials=trials, gap=gap, background=background,
                                            llm_base_url=base_url if hanging else None, drain=drain, kind=kind)
                    result.update(background_target=background, llm="hanging" if hanging else "off")
                    out["variants"].append(result)
    out["load_after"] = load_average()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    return asyncio.run(run_async(quick))


def main() -> None:
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))


if __name__ == "__main__":
    main()
