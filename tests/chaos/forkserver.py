"""Start real `iopbot run` processes in about two seconds instead of fifteen.

Importing aiogram costs ~10 s of CPU on a small machine (it builds hundreds of pydantic models),
and the SIGKILL test starts the bot eleven times. So one helper process imports the bot once and
then forks a fresh child for each start. The child is a separate OS process running the same entry
point as `python -m bot --config <file> run` (`bot.cli.main`), with its own environment, working
directory and log file; SIGKILL ends it exactly as it ends a bot started from the shell.

`ForkedBotProcess` is a `BotProcess` (same config file, same clock file, same log) whose
`start()` asks the fork server instead of spawning a new interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bot.sandbox.botapi import DEFAULT_TOKEN
from tests.support.e2e import REPO, BotProcess

_SERVER = r"""
import json, os, signal, sys, traceback
import bot.cli, bot.runtime  # the expensive imports, paid once
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: no zombies
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            code = bot.cli.main(job["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code or 0)
    print(pid, flush=True)
"""


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], cwd=REPO, stdin=subprocess.PIPE,  # noqa: S603
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the fork server did not start: {line!r}")

    def spawn(self, argv: list[str], cwd: str, env: dict[str, str], log: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "cwd": cwd, "env": env, "log": log}) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ForkedChild:
    """The little of `subprocess.Popen` that BotProcess uses, for a child of the fork server."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not _alive(self.pid):
            self.returncode = -1  # the fork server's child: its exit status is not ours to read
        return self.returncode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode


class ForkedBotProcess(BotProcess):
    def __init__(self, server: ForkServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server = server

    def start(self) -> None:
        self.write_config()
        env = {**os.environ, "BOT_TOKEN": DEFAULT_TOKEN, "IOPBOT_CLOCK_FILE": str(self.clock_file),
               **self.extra_env}
        env.pop("DATABASE_URL", None)
        pid = self.server.spawn(["--config", str(self.config_path), "run"], str(self.workdir), env,
                                str(self.log_path))
        self.proc = ForkedChild(pid)  # type: ignore[assignment]
        self.starts += 1

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
