"""End-to-end harness: the real `iopbot run` process against the local Bot API on 127.0.0.1.

The Bot API runs inside the test process; the bot runs as a child process with its own config,
database and a clock file the test moves. People are driven by injecting their messages and
button presses, and by reading what their chat received, like a person would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.clock import OffsetFileClock
from bot.sandbox.botapi import DEFAULT_TOKEN, BotAPIControl
from tests.support.forkserver import REPO, ForkedChild, fork_server


class BotProcess:
    def __init__(self, workdir: Path, api_base: str, db_url: str, *, extra_config: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.api_base = api_base
        self.db_url = db_url
        self.extra_config = extra_config
        self.extra_env = env or {}
        self.clock_file = workdir / "clock-offset"
        self.log_path = workdir / "bot.log"
        self.config_path = workdir / "config.toml"
        self.proc: ForkedChild | None = None
        self._clock_offset = 0.0
        self.starts = 0

    def write_config(self) -> None:
        sections = {
            "program": 'name = "Test IOP"',
            "telegram": f'api_base = "{self.api_base}"\nbot_username = "iopbot_test_bot"\npolling_timeout_seconds = 1\n'
                        "request_timeout_seconds = 5.0",
            "database": f'url = "{self.db_url}"',
            "schedule": "tick_seconds = 0.2\nlease_seconds = 3.0",
            # IOPBOT_TEST_CONTENT runs the suite against another content library (an author's draft).
            # No daily read (a test that wants it sets drip_every_days): it would add messages to chats.
            "content": f'directory = "{os.environ.get("IOPBOT_TEST_CONTENT", REPO / "content")}"\n'
                       "drip_every_days = 0",
            # No weekly questionnaires either (a test that wants them sets enabled = true).
            "instruments": "enabled = false",
            # Functional tests need not wait a second between messages in a chat; tests of the
            # limits themselves set these back to Telegram's numbers.
            "sender": "backoff_base_seconds = 0.05\nbackoff_max_seconds = 0.5\nper_chat_interval_seconds = 0.01",
            "logging": 'level = "DEBUG"',
            # Replies are read in order: wait for the semantic layer however loaded the machine is
            # (its late answer has its own test, tests/flows/test_semantic_gate.py).
            "semantic": "wait_ms = 5000",
        }
        # Test-specific overrides replace whole keys of the defaults above.
        for block in re.split(r"(?m)^(?=\[)", textwrap.dedent(self.extra_config).strip()):
            if not block.strip():
                continue
            header, _, body = block.partition("\n")
            name = header.strip()[1:-1]
            base = dict(line.split("=", 1) for line in sections.get(name, "").splitlines() if "=" in line)
            base.update(dict(line.split("=", 1) for line in body.splitlines() if "=" in line))
            sections[name] = "\n".join(f"{k.strip()} = {v.strip()}" for k, v in base.items())
        self.config_path.write_text("\n\n".join(f"[{k}]\n{v}" for k, v in sections.items()) + "\n")

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "BOT_TOKEN": DEFAULT_TOKEN, "IOPBOT_CLOCK_FILE": str(self.clock_file),
               **self.extra_env}
        env.pop("DATABASE_URL", None)  # the config names this test's own database
        return env

    def start(self) -> None:
        """`iopbot --config <file> run` in a new process (forked from the pre-imported fork server)."""
        self.write_config()
        self.proc = fork_server().spawn(["--config", str(self.config_path), "run"], cwd=self.workdir,
                                        env=self._env(), stdout=self.log_path)
        self.starts += 1

    async def wait_ready(self, control: BotAPIControl, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Ready when this start of the process has asked for updates (or, in webhook mode, set its
        webhook). The Bot API may be shared with earlier processes: count only requests after now
        (a new process spends seconds importing before its first request)."""
        deadline = time.monotonic() + timeout
        baseline = len(await control.requests(method="getUpdates")) + len(await control.requests(method="setWebhook"))
        while time.monotonic() < deadline:
            seen = len(await control.requests(method="getUpdates")) + len(await control.requests(method="setWebhook"))
            if seen > baseline and self.proc and self.proc.poll() is None:
                return
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"iopbot exited with {self.proc.returncode}:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"iopbot did not start polling within {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye — what a crash or an OOM kill looks like."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    async def stop_async(self) -> None:
        """`stop()` without blocking the event loop: the local Bot API runs in it, and a bot that is
        stopping still talks to it (updates in progress, pages already started). A blocked loop
        would leave the bot waiting for answers until the SIGKILL 10 s later."""
        await asyncio.to_thread(self.stop)

    def move_clock(self, **delta: float) -> None:
        """Move the bot's clock forward (shared through a file; nothing sleeps)."""
        from datetime import timedelta

        self._clock_offset += timedelta(**delta).total_seconds()
        OffsetFileClock.write_offset(self.clock_file, self._clock_offset)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `iopbot` command on this bot's config and database, in the bot's environment (a new
        process from the fork server, like `python -m bot --config <file> ARGS`)."""
        self.write_config()
        return fork_server().run(["--config", str(self.config_path), *args], cwd=self.workdir, env=self._env(),
                                 output_dir=self.workdir, timeout=120)


_user_ids = iter(range(10_000, 10_000_000, 7))


def new_user_id() -> int:
    """A Telegram user id no other test in this run uses (tests share a bot process)."""
    return next(_user_ids)


async def issue_invite(db_url: str, who: str, alias: str, *, role: str = "therapist", therapist: str = "",
                       backup: str | None = None, timezone: str | None = None, on_call: bool = False,
                       now: Any = None) -> str:
    """Create an invite straight in the bot's database (what `iopbot invite` does, without the
    seconds a new process costs). One test runs the real command."""
    from bot.clock import SystemClock
    from bot.config import load_settings
    from bot.db.engine import make_engine, make_sessionmaker
    from bot.services import enrollment

    settings = load_settings(REPO / "config.toml", env={})
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            when = now or SystemClock().now()
            if who == "staff":
                issued = await enrollment.invite_staff(session, when, settings, alias, role, on_call=on_call)
            else:
                issued = await enrollment.invite_participant(session, when, settings, alias, therapist,
                                                             backup_alias=backup, timezone=timezone)
            await session.commit()
    finally:
        await engine.dispose()
    return issued.token


@dataclass
class Person:
    """Someone chatting with the bot in Telegram: types, taps buttons, reads replies."""

    control: BotAPIControl
    user_id: int
    first_name: str = "Sam"
    language_code: str | None = "en"
    seen: int = 0
    typed: list[str] = field(default_factory=list)

    @property
    def chat_id(self) -> int:
        return self.user_id

    async def say(self, text: str) -> None:
        self.typed.append(text)
        await self.control.inject_message(self.user_id, text, first_name=self.first_name,
                                          language_code=self.language_code)

    async def read(self, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
        """Wait for `count` new messages and return them (the visible text and buttons)."""
        messages = await self.control.wait_for_messages(self.chat_id, self.seen + count, timeout=timeout)
        new = messages[self.seen:]
        self.seen = len(messages)
        return new

    async def read_text(self, count: int = 1, timeout: float = 30.0) -> str:  # noqa: ASYNC109
        return "\n---\n".join((m.get("visible_text") or m.get("caption") or "") for m in await self.read(count, timeout))

    async def all_messages(self) -> list[dict[str, Any]]:
        return await self.control.sent_messages(self.chat_id)

    async def wait_for_message(self, contains: str, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait until some message in the chat (sent or edited) shows `contains`; return it."""
        deadline = time.monotonic() + timeout
        while True:
            for message in reversed(await self.all_messages()):
                if contains in (message.get("visible_text") or message.get("caption") or ""):
                    return message
            if time.monotonic() > deadline:
                texts = [(m.get("visible_text") or "")[:80] for m in await self.all_messages()]
                raise AssertionError(f"chat {self.chat_id}: no message shows {contains!r} within {timeout}s: {texts}")
            await asyncio.sleep(0.05)

    async def press(self, label: str) -> None:
        """Tap the newest button whose label contains `label`."""
        for message in reversed(await self.all_messages()):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if label.lower() in button["text"].lower() and "callback_data" in button:
                        await self.control.press_button(self.user_id, message["message_id"], button["callback_data"],
                                                        chat_id=self.chat_id)
                        return
        raise AssertionError(f"no button labelled {label!r} in chat {self.chat_id}")


def buttons(message: dict[str, Any]) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def enroll_staff(proc: BotProcess, control: BotAPIControl, alias: str, role: str = "therapist",
                       *, on_call: bool = False) -> Person:
    token = await issue_invite(proc.db_url, "staff", alias, role=role, on_call=on_call)
    person = Person(control, new_user_id(), first_name="Dr")
    await person.say(f"/start {token}")
    welcome = await person.read_text()
    assert f"Welcome, {alias}" in welcome, welcome
    return person


async def enroll_participant(proc: BotProcess, control: BotAPIControl, alias: str, therapist: str,
                             *, backup: str | None = None, language_code: str = "en",
                             quiet_hours: bool = True) -> Person:
    """Walk the whole enrollment as a participant would: consent, time zone, time, quiet hours
    (kept as offered, from 22:00 in Chicago; `quiet_hours=False` for none, where what the test
    reads must not depend on the time of day the suite runs at)."""
    token = await issue_invite(proc.db_url, "participant", alias, therapist=therapist, backup=backup)
    person = Person(control, new_user_id(), language_code=language_code)
    await person.say(f"/start {token}")
    consent = (await person.read())[0]
    assert buttons(consent) and "encrypted" in consent["visible_text"], consent
    await person.press(buttons(consent)[0])  # "I agree" / "Estoy de acuerdo"
    await person.read(2)
    await person.press("Chicago")
    await person.read(2)
    await person.press("09:00")
    await person.read(2)
    await person.press("22:00" if quiet_hours else "No quiet hours")
    done = await person.read_text()
    assert "09:00" in done and "America/Chicago" in done, done
    return person


@asynccontextmanager
async def running(proc: BotProcess, control: BotAPIControl) -> AsyncIterator[BotProcess]:
    """Start the bot process, wait until it answers, and stop it afterwards (for module fixtures)."""
    proc.start()
    try:
        await proc.wait_ready(control)
        yield proc
    finally:
        await proc.stop_async()
