"""Browser fixtures: the real `iopbot sandbox` process, and Debian's Chromium driven by Playwright.

Chromium is the system package (/usr/bin/chromium), never a browser Playwright downloads. When it
is missing the tests fail and say how to install it: a browser test that skips would let a broken
page pass unnoticed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.screens import ARTIFACTS
from tests.support.forkserver import fork_server

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
START_TIMEOUT = 180.0  # CI machines are not quiet


def chromium_path() -> str:
    path = os.environ.get("IOPBOT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            "Chromium is not installed, so the browser tests cannot run. Install Debian's package: "
            "`sudo apt-get update && sudo apt-get install -y chromium` (`python3 dev.py test` does this "
            "when run as root), or point IOPBOT_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return path


@dataclass(frozen=True)
class RunningSandbox:
    url: str  # the chat page
    bot_api: str  # the local Bot API the bot talks to


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """`iopbot sandbox --port 0` in its own data folder (a process from the fork server, like
    `python -m bot sandbox ...`), once it says it is ready."""
    data = tmp_path_factory.mktemp("sandbox")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "IOPBOT_CLOCK_FILE")}
    log_path = data / "sandbox.log"
    out_path = data / "sandbox.out"
    proc = fork_server().spawn(["sandbox", "--port", "0", "--data", str(data / "data")], cwd=REPO, env=env,
                               stdout=out_path, stderr=log_path)
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    url = bot_api = None
    try:
        while url is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(
                    f"the sandbox did not become ready (exit code {proc.poll()}):\n{''.join(seen)}\n"
                    f"{log_path.read_text(errors='replace')[-4000:] if log_path.exists() else ''}")
            text = out_path.read_text(errors="replace") if out_path.exists() else ""
            seen = text.splitlines(keepends=True)
            for line in seen:
                if found := re.search(r"Telegram stand-in: (http://127\.0\.0\.1:\d+)", line):
                    bot_api = found.group(1)
                if found := re.search(r"Open (http://127\.0\.0\.1:\d+)", line):
                    url = found.group(1)
            if url is None:
                time.sleep(0.1)
        assert any("127.0.0.1 only" in line for line in seen), seen  # it says where it listens
        assert bot_api is not None, seen
        yield RunningSandbox(url, bot_api)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: `.venv/bin/pip install -e '.[test]'` "
                    "(never `playwright install`: the tests use the system Chromium)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # a loaded CI machine answers slower than a laptop
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    if request.node.stash.get(_CALL_FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
