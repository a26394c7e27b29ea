"""Scale-out at the size issue 16 names: three `iopbot run --mode webhook` workers on one
PostgreSQL, 200 participants, 2,000 updates, a wave of due check-ins, one worker SIGKILLed.

    python -m bench --only scale_out        (or python -m bench.scale_out)

Then the same with one poller and two schedule-only workers (`--mode polling` x 3), the poller
killed between the wave and the answers (another takes the role within seconds).

The same steps as tests/e2e/test_scale_out.py (which runs them at 50 participants in the suite):
the local Bot API plays Telegram and the load balancer (round robin per delivery attempt, so one
person's consecutive updates land on different workers, and an update whose worker died is
delivered again to another). Each participant sends /help and three notes, then the injected
clock moves past everyone's check-in time (the wave: 200 check-ins due at once, claimed by
whichever workers get them), and everyone answers the whole check-in (three buttons and three
typed answers, each an update of its own). A third of the way through the dialogs one worker is
killed with SIGKILL. 200 x (1 + 3 + 6) = 2,000 updates, 2,200 replies and questions.

Measured and checked at the server: every dialog completes; zero duplicate replies (beyond one
repeat per update that was in flight on the killed worker, the documented window between
Telegram's 200 and the reply row's deletion); exactly one check-in question per participant;
every due row sent; every update handled once; the most sendMessage calls in any one second
against the configured rate (the workers share one budget: at most the rate x (1 + LATE) + 1).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support import REPO, load_average

PARTICIPANTS = 200
NOTES = 3  # /help, three notes, six check-in answers: 10 updates each
WORKERS = 3
RATE = 50.0  # [sender] messages_per_second for the run (2,200 messages: ~45 s of sending at this rate)
CONFIG = f"""
    [sender]
    messages_per_second = {RATE}
    burst = 10
    [schedule]
    tick_seconds = 0.2
    lease_seconds = 10.0
"""


async def run_async(mode: str = "webhook") -> dict[str, Any]:
    """One run: "webhook" (three webhook workers, one SIGKILLed a third into the dialogs) or
    "polling" (one elected poller and two schedule-only workers; the poller SIGKILLed after the
    wave, another takes the role)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bot.sandbox.botapi import BotAPIControl, FakeBotAPI, RateLimits
    from bot.telegram.send_budget import LATE
    from tests.e2e import test_scale_out as steps
    from tests.support.databases import create_postgres_database
    from tests.support.workers import WorkerBot, free_port, register_webhook

    out: dict[str, Any] = {"mode": mode, "participants": PARTICIPANTS, "workers": WORKERS,
                           "configured_per_second": RATE, "load_before": load_average()}
    # Telegram's limits far above the configured rate: the run measures what the workers send.
    api = FakeBotAPI(rate_limits=RateLimits(global_per_second=1000.0, global_burst=1000.0,
                                            per_chat_per_second=100.0, per_chat_burst=100.0))
    await api.start()
    assert api.base_url
    bots: list[WorkerBot] = []
    with tempfile.TemporaryDirectory(prefix="iopbot-bench-scale-") as tmp:
        try:
            async with BotAPIControl(api.base_url) as control:
                db_url = create_postgres_database()
                balancer = f"http://127.0.0.1:{free_port()}/telegram/webhook"
                bots = [WorkerBot(Path(tmp) / f"w{i}", api.base_url, db_url, mode, extra_config=CONFIG,
                                  public_url=balancer) for i in range(WORKERS)]
                for bot in bots:
                    bot.workdir.mkdir()
                await steps._create_participants(db_url, steps._now_plus(10), PARTICIPANTS)
                if mode == "webhook":
                    await register_webhook(bots[0], control, [b.url for b in bots])
                for bot in bots:
                    bot.start()
                if mode == "webhook":
                    await asyncio.gather(*(bot.wait_listening() for bot in bots))
                await asyncio.gather(*(bot.wait_running() for bot in bots))
                victim = bots[random.Random(16).randrange(WORKERS)]  # noqa: S311 - not cryptography

                async def kill_one() -> str:
                    victim.kill()
                    return victim.url

                async def kill_the_poller() -> None:
                    poller = await steps._the_poller(bots)
                    killed_at = time.monotonic()
                    poller.kill()
                    await steps._the_poller([b for b in bots if b is not poller], timeout=30)
                    out["poller_taken_over_after_seconds"] = round(time.monotonic() - killed_at, 1)

                if mode == "webhook":
                    figures = await steps._run_participants(bots, control, api, mid_dialogs=kill_one,
                                                            participants=PARTICIPANTS, notes=NOTES, patience=4.0)
                else:
                    figures = await steps._run_participants(bots, control, api, before_dialogs=kill_the_poller,
                                                            participants=PARTICIPANTS, notes=NOTES, patience=4.0)
                    out["conflicts_409"] = sum(1 for r in api.requests(method="getUpdates") if r["status"] == 409)
                webhook = api.stats()["webhook"]
                spread: dict[int, set[str]] = {}
                for record in (await control.webhook())["deliveries"]:
                    if record["status"] == 200 and record["chat_id"] is not None:
                        spread.setdefault(record["chat_id"], set()).add(record["url"])
                users = range(steps.FIRST_USER, steps.FIRST_USER + PARTICIPANTS)
                repeats = steps._repeats(figures)
                updates = PARTICIPANTS * steps.updates_per_participant(NOTES)
                out.update(
                    updates=updates, seconds=round(figures["elapsed"], 1),
                    updates_per_second=round(updates / figures["elapsed"], 1),
                    free_messages_seconds=round(figures["free_seconds"], 1),
                    wave_checkins=PARTICIPANTS, wave_seconds=round(figures["wave_seconds"], 1),
                    dialogs_completed=figures["run"].done, checkin_questions_per_chat=sorted(set(figures["questions"])),
                    messages=sum(figures["per_chat"]), repeated_replies=repeats,
                    in_flight_on_killed_worker=webhook["failed_attempts"], deliveries_dropped=webhook["dropped"],
                    deliveries_by_worker=sorted(webhook["by_upstream"].values()),
                    participants_on_two_or_more_workers=sum(len(spread.get(u, ())) >= 2 for u in users),
                    handled_updates=figures["handled_updates"], due_rows_sent=figures["done_rows"],
                    max_sends_in_one_second=figures["max_per_second"],
                    allowed_in_one_second=int(RATE * (1 + LATE) + 1),
                    too_many_requests=figures["stats"]["too_many_requests"],
                )
                try:
                    steps._assert_nothing_lost_nothing_twice(figures, repeats_allowed=webhook["failed_attempts"])
                    out["nothing_lost_nothing_twice"] = True
                except AssertionError as exc:
                    out["nothing_lost_nothing_twice"] = False
                    out["failure"] = str(exc)[:300]
        finally:
            await asyncio.gather(*(bot.stop_async() for bot in bots), return_exceptions=True)
            await api.stop()
    out["load_after"] = load_average()
    return out


def run(quick: bool = False) -> dict[str, Any]:
    if quick:  # the suite's e2e test is the small version; a quick bench has nothing smaller to offer
        return {"skipped": "scale_out runs only at full size (tests/e2e/test_scale_out.py is the small one)"}
    return {mode: asyncio.run(run_async(mode)) for mode in ("webhook", "polling")}


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    if "skipped" in r:
        return [("scale_out", "skipped", r["skipped"][:80], "", "-")]
    out: list[tuple[str, str, str, str, str]] = []
    for mode in ("webhook", "polling"):
        if mode in r:
            out.extend(_rows(r[mode]))
    return out


def _rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    ok = r.get("nothing_lost_nothing_twice", False)
    if "updates" not in r:
        return [("scale_out", f"{r['mode']}: failed", str(r.get("failure", "?"))[:80], "", "MISSED")]
    if r["mode"] == "webhook":
        who, killed = f"{r['workers']} webhook workers", "one SIGKILLed a third into the dialogs"
        spread = ("participants whose updates landed on 2+ workers; deliveries by worker; failed deliveries "
                  "retried on the others", f"{r['participants_on_two_or_more_workers']}/{r['participants']}; "
                  f"{r['deliveries_by_worker']}; {r['in_flight_on_killed_worker']}")
    else:
        who, killed = "1 poller + 2 schedule-only workers", "the poller SIGKILLed after the wave"
        spread = ("poller role taken over after; getUpdates conflicts (409)",
                  f"{r.get('poller_taken_over_after_seconds')} s; {r.get('conflicts_409')}")
    return [
        ("scale_out", f"{who} on PostgreSQL, {killed}: {r['participants']} participants, "
         f"{r['updates']:,} updates + {r['wave_checkins']} check-ins due at once", f"{r['seconds']} s "
         f"({r['updates_per_second']} updates/s)", "", "-"),
        ("scale_out", f"{r['mode']}: dialogs completed, check-in questions per chat, due rows sent",
         f"{r['dialogs_completed']}/{r['participants']}, {r['checkin_questions_per_chat']}, {r['due_rows_sent']}",
         "all, [1], all", "met" if ok else "MISSED"),
        # A kill between Telegram's 200 for a reply and its row's deletion (milliseconds) repeats it once.
        ("scale_out", f"{r['mode']}: replies repeated (each at most once, only by the kill); updates handled once",
         f"{r['repeated_replies']}; {r['handled_updates']:,}", f"~0; {r['updates']:,}", "met" if ok else "MISSED"),
        ("scale_out", f"{r['mode']}: most sendMessage in any one second at the server (configured "
         f"{r['configured_per_second']:g}/s; bound rate x (1 + LATE) + 1), 429s",
         f"{r['max_sends_in_one_second']}, {r['too_many_requests']}", f"<= {r['allowed_in_one_second']}, 0",
         "met" if r["max_sends_in_one_second"] <= r["allowed_in_one_second"] and not r["too_many_requests"]
         else "MISSED"),
        ("scale_out", f"{r['mode']}: {spread[0]}", spread[1], "", "-"),
    ]


def main() -> None:
    import json

    print(json.dumps(run(), indent=2))


if __name__ == "__main__":
    main()
