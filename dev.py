#!/usr/bin/env python3
"""The two commands of the Quick start, for a fresh machine with Python 3.11+ and nothing else.

    python3 dev.py try     # install into .venv, then run the bot against a local Telegram stand-in
    python3 dev.py test    # install into .venv (with test tools), then run the whole test suite

Everything is installed into ./.venv from PyPI; nothing outside this folder is touched, except
that `test` installs Debian's chromium for the browser test when it is missing and we are root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def _stamp(extras: str) -> Path:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()[:16]
    return VENV / f".installed-{digest}"


def ensure_venv(extras: str = "") -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"iopbot needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = _stamp(extras)
    if stamp.exists():
        return
    print("installing iopbot and its dependencies into .venv (first run only) ...", flush=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "-e", target], check=True, cwd=ROOT)
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()


def ensure_chromium() -> None:
    """The browser test needs Debian's chromium; install it when we can (CI runs as root)."""
    if shutil.which("chromium") or os.environ.get("IOPBOT_SKIP_BROWSER"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("note: chromium is not installed; the browser test will say how to install it", flush=True)
        return
    print("installing chromium for the browser test ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=False, env=env,
                   stdout=subprocess.DEVNULL)


def cmd_test(args: list[str]) -> int:
    ensure_venv("test")
    ensure_chromium()
    # Two workers (this machine and CI have two cores); a test module stays on one worker, so the
    # bot process a module shares is started once.
    command = [str(PY), "-m", "pytest", *(args or ["-q", "-n", "2", "--dist", "loadfile"])]
    print("running:", " ".join(command[2:]), flush=True)
    code = subprocess.run(command, cwd=ROOT).returncode
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
        return 1
    return code


def cmd_try(args: list[str]) -> int:
    ensure_venv("test")
    return subprocess.run([str(PY), "-m", "bot", "sandbox", *args], cwd=ROOT).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("try", "test"):
        print(__doc__)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    return cmd_test(rest) if command == "test" else cmd_try(rest)


if __name__ == "__main__":
    sys.exit(main())
