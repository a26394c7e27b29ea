"""Start real `iopbot` processes in about a second instead of seven.

Importing aiogram costs seconds of CPU on a small machine (it builds hundreds of pydantic models),
and the suite starts `iopbot run` dozens of times and runs `iopbot` commands besides. So one helper
process per test worker imports the bot once and then forks a fresh child for each start. The child
is a separate OS process that runs the same entry point as `python -m bot --config <file> run`
(`bot.cli.main`, what `bot/__main__.py` calls), with its own environment, working directory, argv
and output files; SIGKILL and SIGTERM reach it exactly as they reach a bot started from the shell,
and its exit status is the real one (the fork server reaps it and hands the status over in a file).

Used by `tests.support.e2e.BotProcess` (`start()` and `cli()`), so every end-to-end and chaos test
that starts the bot goes through here. Only the imports are shared: everything `iopbot run` does at
start (reading the config, migrating, loading content and compiling the safety rules) the child
does itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# What `iopbot run` and the commands import; paid once in the fork server instead of in every child.
_PRELOAD = ("bot.cli", "bot.runtime", "alembic.command", "alembic.runtime.migration", "aiosqlite", "asyncpg",
            "sqlalchemy.dialects.sqlite.aiosqlite", "sqlalchemy.dialects.postgresql.asyncpg")


def _warm_regex_cache() -> None:
    """Compile the shipped safety rules once here, with Python's own cache of compiled regular
    expressions made large enough to keep them all, so that each child's `SafetyRules.load` finds
    its ~1,200 patterns compiled (about 3 s of CPU saved per start). The child still reads, checks
    and builds the rules itself; only `re.compile` answers from the cache, as it does for any
    pattern compiled before. Rule files that differ from these compile as usual."""
    import re

    from bot.safety.rules import SafetyRules

    if isinstance(getattr(re, "_MAXCACHE", None), int):
        re._MAXCACHE = max(re._MAXCACHE, 20_000)  # type: ignore[attr-defined]
    content = os.environ.get("IOPBOT_TEST_CONTENT") or str(REPO / "content")
    with contextlib.suppress(Exception):  # broken rules: the child reports them, as `iopbot run` does
        SafetyRules.load(Path(content))


def _serve() -> None:
    """The fork server's loop: one JSON job per line on stdin, the child's pid per line on stdout."""
    import importlib
    import select
    import traceback

    for name in _PRELOAD:
        importlib.import_module(name)
    import bot.cli
    _warm_regex_cache()

    main_file = str(Path(bot.__file__).with_name("__main__.py"))
    statuses: dict[int, str] = {}  # child pid -> file to write its exit status to

    def reap() -> None:
        while statuses:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            path = statuses.pop(pid, None)
            if path is not None:
                code = os.waitstatus_to_exitcode(status)  # like Popen.returncode: -N when killed by signal N
                with open(path + ".tmp", "w") as out:
                    out.write(str(code))
                os.replace(path + ".tmp", path)

    def run_child(job: dict[str, Any]) -> None:
        code: object = 1
        try:
            os.chdir(job["cwd"])
            os.environ.clear()
            os.environ.update(job["env"])
            for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(out, fd)
                os.close(out)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            sys.argv = [main_file, *job["argv"]]
            code = bot.cli.main(job["argv"])
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            import logging

            logging.shutdown()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        if code is None:
            code = 0
        elif not isinstance(code, int):  # sys.exit("message") prints it and exits 1, as Python does
            print(code, file=sys.stderr, flush=True)
            code = 1
        os._exit(code)

    print("ready", flush=True)
    pending = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.02)
        reap()
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break  # the test worker has gone: stop serving (running children are the tests' to stop)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            job = json.loads(line)
            pid = os.fork()
            if pid == 0:
                run_child(job)
            statuses[pid] = job["status"]
            print(pid, flush=True)


class ForkServer:
    """One pre-imported Python that forks `iopbot` processes on request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.forkserver"], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the fork server did not start: {line!r}")

    def spawn(self, argv: list[str], *, cwd: Path | str, env: dict[str, str], stdout: Path | str,
              stderr: Path | str | None = None) -> ForkedChild:
        """Start `iopbot <argv>` in a new process; its output is appended to `stdout` (and `stderr`,
        or the same file)."""
        status = Path(stdout).with_name(f".exit-{time.time_ns()}-{os.getpid()}")
        job = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(stdout), "stderr": str(stderr or stdout),
               "status": str(status)}
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            pid = int(self.proc.stdout.readline())
        return ForkedChild(pid, status)

    def run(self, argv: list[str], *, cwd: Path | str, env: dict[str, str], output_dir: Path,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`iopbot <argv>` to completion, like `subprocess.run(..., capture_output=True, text=True)`."""
        stamp = f"{time.time_ns()}-{os.getpid()}"
        out, err = output_dir / f".cli-{stamp}.out", output_dir / f".cli-{stamp}.err"
        child = self.spawn(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(9)
            child.wait(10)
            raise
        try:
            return subprocess.CompletedProcess(["iopbot", *argv], code, out.read_text(errors="replace"),
                                               err.read_text(errors="replace"))
        finally:
            for path in (out, err):
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ForkedChild:
    """The little of `subprocess.Popen` that the tests use, for a child of the fork server: `pid`,
    `poll()`, `wait()`, `send_signal()` and `returncode` (the real exit status; -N for signal N)."""

    def __init__(self, pid: int, status_file: Path) -> None:
        self.pid = pid
        self.status_file = status_file
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                text = self.status_file.read_text()
            except FileNotFoundError:
                return None
            self.returncode = int(text)
            self.status_file.unlink(missing_ok=True)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not reaped yet, so the pid is still this child's
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(9)

    def terminate(self) -> None:
        self.send_signal(15)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"iopbot (pid {self.pid})", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


_shared: ForkServer | None = None
_shared_lock = threading.Lock()


def fork_server() -> ForkServer:
    """This test process's fork server, started on first use and stopped when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.proc.poll() is not None:
            _shared = ForkServer()
            atexit.register(_shared.close)
        return _shared


if __name__ == "__main__":
    sys.path[0] = str(REPO)  # `-m` put the working directory there; children chdir elsewhere
    _serve()
