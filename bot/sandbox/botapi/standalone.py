"""The local Bot API as a process of its own (``python -m bot.sandbox.botapi``): prints its base URL
once it accepts connections, stops on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from bot.clock import OffsetFileClock
from bot.sandbox.botapi.faults import RateLimits
from bot.sandbox.botapi.server import DEFAULT_TOKEN, DEFAULT_USERNAME, FakeBotAPI


async def _serve(api: FakeBotAPI, host: str, port: int) -> None:
    url = await api.start(host, port)
    print(url, flush=True)  # the parent process reads this line to learn the port
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await api.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.botapi",
        description="Run the fake Telegram Bot API server. Prints its base URL on one line once it "
        "accepts connections; stops on SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default) picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="do not enforce Telegram's flood limits"
    )
    parser.add_argument("--clock-offset-file", type=Path, help="date messages by this OffsetFileClock")
    args = parser.parse_args(argv)
    api = FakeBotAPI(
        args.token,
        username=args.username,
        rate_limits=RateLimits(enabled=not args.no_rate_limits),
        clock=OffsetFileClock(args.clock_offset_file) if args.clock_offset_file else None,
    )
    asyncio.run(_serve(api, args.host, args.port))
