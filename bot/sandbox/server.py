"""`iopbot sandbox`: the whole bot on one machine, with a stand-in for Telegram and a chat page.

One process runs three things on 127.0.0.1 only:

* the local Bot API (`FakeBotAPI`) on a free port: the bot talks to it exactly as to Telegram;
* the bot itself, assembled by `bot.runtime.assemble` and polling that API, with its scheduler
  tick; SQLite in a temporary folder (or `--data DIR`, kept between runs), the content library
  from the config or `--content DIR`;
* the chat page (`chatpage.py`) on `--port`, where a visitor picks who they are and chats.

The bot and the Bot API share an `OffsetFileClock` (IOPBOT_CLOCK_FILE), which the page moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bot.clock import OffsetFileClock
from bot.config import DatabaseSettings, Settings
from bot.sandbox.botapi import DEFAULT_TOKEN, DEFAULT_USERNAME, FakeBotAPI, RateLimits
from bot.sandbox.chatpage import ChatPage
from bot.sandbox.demo import (
    ALERT_MESSAGE,
    PARTICIPANTS,
    PROGRAM_NAME,
    STAFF,
    THERAPIST_ALIAS,
    DemoProgram,
    Persona,
    add_new_user,
    has_open_alert,
    open_cohort_group,
    seed_records,
)
from bot.sandbox.timetravel import BotClock

if TYPE_CHECKING:
    from bot.runtime import RunningBot


HOST = "127.0.0.1"  # never another address: the sandbox has no authentication
REPO_CONTENT = Path(__file__).resolve().parents[2] / "content"
SEED_WAIT_SECONDS = 20.0


class SandboxError(Exception):
    """The sandbox cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class SandboxOptions:
    port: int = 8080
    content_dir: Path | None = None
    data_dir: Path | None = None


def sandbox_settings(base: Settings, *, api_base: str, data_dir: Path, content_dir: Path) -> Settings:
    """The operator's settings, pointed at the local Bot API, the sandbox's own SQLite file and the
    chosen content; a one-second scheduler tick, and no pause between messages to one chat."""
    db_file = (data_dir / "iopbot-sandbox.db").resolve()
    return base.replace(
        program=dataclasses.replace(base.program, name=base.program.name or PROGRAM_NAME),
        telegram=dataclasses.replace(base.telegram, api_base=api_base, bot_username=DEFAULT_USERNAME,
                                     mode="polling", polling_timeout_seconds=10, request_timeout_seconds=15.0),
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{db_file}"),
        schedule=dataclasses.replace(base.schedule, tick_seconds=1.0, lease_seconds=30.0),
        sender=dataclasses.replace(base.sender, per_chat_interval_seconds=0.05, backoff_base_seconds=0.05,
                                   backoff_max_seconds=1.0),
        content=dataclasses.replace(base.content, directory=str(content_dir)),
        secrets=dataclasses.replace(base.secrets, bot_token=DEFAULT_TOKEN, webhook_secret=""),
    )


def pick_content_dir(given: Path | None, settings: Settings) -> Path:
    if given is not None:
        path = given.expanduser().resolve()
        if not (path / "en" / "ui.toml").is_file():
            raise SandboxError(f"--content {given}: no en/ui.toml there. Point it at a content folder "
                               f"laid out like {REPO_CONTENT} (en/ui.toml, en/safety/, ...).")
        return path
    for candidate in (settings.content_dir, REPO_CONTENT):
        if (candidate / "en" / "ui.toml").is_file():
            return candidate
    raise SandboxError(f"no content folder at {settings.content_dir}; pass --content DIR")


def check_port_free(port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SandboxError(f"port {port} on {HOST} is in use; pick another with --port N "
                                   "(or --port 0 for any free port)") from None
            raise SandboxError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None


class Sandbox:
    """The running sandbox: start() it, then serve until stopped."""

    def __init__(self, base: Settings, options: SandboxOptions, say: Callable[[str], None]) -> None:
        self.base = base
        self.options = options
        self.say = say
        # Checked before anything is created, so a mistake in the command line leaves nothing behind.
        self.content_dir = pick_content_dir(options.content_dir, base)
        check_port_free(options.port)
        self.temporary = options.data_dir is None
        self.data_dir = (options.data_dir or Path(tempfile.mkdtemp(prefix="iopbot-sandbox-"))).resolve()
        self.api: FakeBotAPI | None = None
        self.running: RunningBot | None = None
        self.page_runner: web.AppRunner | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.url = ""

    async def start(self) -> None:
        from bot.runtime import assemble  # aiogram: seconds to import, so only when starting

        content_dir = self.content_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        clock_file = self.data_dir / "clock-offset"
        # Read by everything that asks bot.runtime.clock_from_environment() for the time.
        os.environ["IOPBOT_CLOCK_FILE"] = str(clock_file)
        clock = OffsetFileClock(clock_file)
        self.say("iopbot sandbox: the whole bot on this computer, with a stand-in for Telegram and a demo program.")
        self.say(f"  Listening on {HOST} only: other computers cannot reach it, and nothing is sent to Telegram.")
        where = "a temporary folder, deleted when you stop; keep it with --data DIR" if self.temporary else "kept"
        self.say(f"  Data:    {self.data_dir} ({where})")
        self.say(f"  Content: {content_dir}")
        # Telegram's per-chat pace is relaxed so a visitor reads replies at once.
        self.api = FakeBotAPI(rate_limits=RateLimits(per_chat_per_second=100.0, per_chat_burst=100.0), clock=clock)
        api_base = await self.api.start(HOST, 0)
        self.say(f"  Telegram stand-in: {api_base} (the Bot API, and its test controls under /_control/)")
        self.say("Starting the bot and seeding the demo program ...")
        settings = sandbox_settings(self.base, api_base=api_base, data_dir=self.data_dir, content_dir=content_dir)
        try:
            running = await assemble(settings, clock)
        except Exception as exc:
            # Content that fails its checks (safety rules, UI texts) stops a real bot too.
            raise SandboxError(f"the bot could not start with the content in {content_dir}:\n{exc}") from exc
        self.running = running
        ctx = running.ctx
        async with ctx.sessionmaker() as session:
            demo = await seed_records(session, ctx, clock.now())
            await session.commit()

        await running.bot.delete_webhook(drop_pending_updates=False)
        self.tasks.append(asyncio.create_task(running.dispatcher.start_polling(
            running.bot, handle_signals=False, close_bot_session=False,
            polling_timeout=settings.telegram.polling_timeout_seconds,
            allowed_updates=running.dispatcher.resolve_used_update_types()), name="sandbox-polling"))
        self.tasks.append(asyncio.create_task(running.worker.run_forever(), name="sandbox-scheduler"))

        async def new_user() -> Persona:
            async with ctx.sessionmaker() as session:
                persona = await add_new_user(session, ctx, clock.now(), demo)
                await session.commit()
            return persona

        page = ChatPage(
            api=self.api, demo=demo, clock=BotClock(clock_file, ctx.sessionmaker, running.worker.tick),
            sessionmaker=ctx.sessionmaker, bot_username=DEFAULT_USERNAME,
            program_timezone=settings.program.default_timezone, add_new_user=new_user,
        )
        await self._accept_staff_invites(page, demo)
        # The cohort's group chat (#17), in the local Bot API: the page's Group chat tab shows it to
        # its members and writes there as them; the test controls read and write it too.
        group = await open_cohort_group(self.api, ctx, demo)
        self.say(f"  Cohort group chat: {group.title!r}, chat id {group.chat_id}, members {', '.join(group.members)} "
                 f"and the therapist; on the page: Group chat (e.g. /?as=alex&chat=group); also "
                 f"{api_base}/_control/chats/{group.chat_id}, and write as a member with "
                 f"POST {api_base}/_control/groups/{group.chat_id}/messages {{\"user_id\": 2001, \"text\": ...}}")
        if group.prompt_waits:
            self.say("  (the bot posts nothing in the group during its quiet hours: the discussion prompt and the "
                     "welcomes come at their end; move the clock to see them)")
        await self._raise_demo_alert(page, demo)

        self.page_runner = web.AppRunner(page.app(), access_log=None, shutdown_timeout=1.0)
        await self.page_runner.setup()
        try:
            await web.TCPSite(self.page_runner, HOST, self.options.port).start()
        except OSError as exc:
            raise SandboxError(f"cannot listen on {HOST}:{self.options.port}: {exc.strerror}; "
                               "pick another port with --port N") from None
        port = self.page_runner.addresses[0][1]
        page.allowed_hosts = {f"{HOST}:{port}", f"localhost:{port}"}
        self.url = f"http://{HOST}:{port}"

    async def _accept_staff_invites(self, page: ChatPage, demo: DemoProgram) -> None:
        """Staff open their invite links in the bot, as they would in Telegram."""
        assert self.api is not None
        for persona in STAFF:
            token = demo.staff_tokens.pop(persona.key, None)
            if token is None:
                continue
            before = len(self.api.chat(persona.user_id)["messages"])
            page.say(persona, f"/start {token}")
            await self.api.wait_for_messages(persona.user_id, before + 1, SEED_WAIT_SECONDS)

    async def _raise_demo_alert(self, page: ChatPage, demo: DemoProgram) -> None:
        """The participant with the open alert writes a crisis message; the bot does the rest."""
        assert self.api is not None and self.running is not None
        sam = next(p for p in PARTICIPANTS if p.key == "sam")
        async with self.running.ctx.sessionmaker() as session:
            if await has_open_alert(session, sam.alias):
                return
        page.say(sam, ALERT_MESSAGE)
        therapist = demo.personas["therapist"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEED_WAIT_SECONDS
        while loop.time() < deadline:
            texts = [m["visible_text"] or "" for m in self.api.chat(therapist.user_id)["messages"]]
            if any("Safety alert" in t and sam.alias in t for t in texts):
                return
            await asyncio.sleep(0.1)
        self.say(f"  note: {THERAPIST_ALIAS} did not receive the demo alert within {SEED_WAIT_SECONDS:.0f} s; "
                 "see the log (--verbose)")

    async def serve_until_stopped(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({stopper, *self.tasks}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise SandboxError(f"the bot stopped: {task.exception()!r}")

    async def close(self) -> None:
        if self.running is not None:
            with contextlib.suppress(RuntimeError):  # "polling was not started"
                await self.running.dispatcher.stop_polling()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.page_runner is not None:
            await self.page_runner.cleanup()
        running = self.running
        if running is not None:
            await running.sender.settled()  # delivery problems written down before the pool closes
            await running.bot.session.close()
            await running.engine.dispose()
        if self.api is not None:
            await self.api.stop()
        if self.temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)


async def run_sandbox(base: Settings, options: SandboxOptions, say: Callable[[str], None] | None = None) -> None:
    """Start everything, print the address, serve until Ctrl+C or SIGTERM, then clean up."""
    say = say or (lambda line: print(line, flush=True))
    sandbox = Sandbox(base, options, say)  # raises SandboxError for a wrong --content or a busy port
    try:
        await sandbox.start()
        say(f"Ready. Open {sandbox.url} in your browser (each tab can be a different person). "
            "Press Ctrl+C to stop.")
        await sandbox.serve_until_stopped()
    finally:
        say("Stopping the sandbox ...")
        await sandbox.close()
        say("Stopped.")
