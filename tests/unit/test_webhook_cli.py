"""`iopbot webhook set|delete|info` against the local Bot API, in a process of its own that never
imports aiogram; the update kinds it registers are the ones `iopbot run` handles."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest.mock import MagicMock

from bot.cli.webhook import ALLOWED_UPDATES, render_info
from bot.config import load_settings
from bot.sandbox.botapi import DEFAULT_TOKEN, FakeBotAPI, Fault

REPO = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys
from bot.cli import main
code = main(["--config", sys.argv[1], *json.loads(sys.argv[2])])
print("AIOGRAM " + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "aiogram")))
sys.exit(code)
"""


def test_the_registered_kinds_are_what_the_bot_handles() -> None:
    from bot.app import build_dispatcher

    ctx = MagicMock()
    ctx.settings = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "1:x"})
    ctx.sessionmaker = MagicMock(kw={})  # no engine: the dispatcher is built, never run
    dispatcher = build_dispatcher(ctx, MagicMock())
    assert sorted(ALLOWED_UPDATES) == sorted(dispatcher.resolve_used_update_types())
    assert "edited_message" in ALLOWED_UPDATES  # edits are assessed for distress too
    # Peer groups: Telegram sends chat_member only when asked for by name, and join requests,
    # members joining or leaving and the bot's own membership are how the cohort's group is kept.
    assert {"chat_join_request", "chat_member", "my_chat_member"} <= set(ALLOWED_UPDATES)


def _iopbot(config: Path, *args: str, secret: str | None = "s3cret_for-tests") -> subprocess.CompletedProcess[str]:  # noqa: S107
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "IOPBOT_WEBHOOK_SECRET")}
    env["BOT_TOKEN"] = DEFAULT_TOKEN
    if secret:
        env["IOPBOT_WEBHOOK_SECRET"] = secret
    return subprocess.run(  # noqa: S603 (our own interpreter and script, fixed arguments)
        [sys.executable, "-c", _RUN, str(config), json.dumps(list(args))], capture_output=True, text=True,
        cwd=config.parent, env=env, timeout=60, check=False)


async def test_set_info_delete_without_aiogram(tmp_path: Path) -> None:
    api = FakeBotAPI()
    base = await api.start()
    try:
        config = tmp_path / "config.toml"
        config.write_text(f'[program]\nname = "Test"\n[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n'
                          f'[telegram]\napi_base = "{base}"\nwebhook_url = "https://bot.example.org/telegram/webhook"\n'
                          f'[content]\ndirectory = "{REPO / "content"}"\n')
        api.inject_message(5, "hello")  # waiting for the bot

        no_secret = await asyncio.to_thread(_iopbot, config, "webhook", "set", secret=None)
        assert no_secret.returncode == 2 and "IOPBOT_WEBHOOK_SECRET is not set" in no_secret.stderr

        done = await asyncio.to_thread(_iopbot, config, "webhook", "set")
        assert done.returncode == 0, done.stderr
        assert "AIOGRAM []" in done.stdout  # answers in well under a second: no aiogram
        assert "webhook:          https://bot.example.org/telegram/webhook" in done.stdout
        assert ("allowed updates:  callback_query, chat_join_request, chat_member, edited_message, message, "
                "my_chat_member") in done.stdout
        call = api.requests(method="setWebhook")[-1]
        assert call["outcome"] == "ok"
        view = api.webhook()
        assert view["url"] == "https://bot.example.org/telegram/webhook" and view["secret_token_set"]
        assert view["allowed_updates"] == sorted(ALLOWED_UPDATES)
        assert api.stats()["pending_updates"] == 1  # kept: no --drop-pending-updates

        info = await asyncio.to_thread(_iopbot, config, "webhook", "info")
        assert info.returncode == 0 and "pending updates:" in info.stdout and "last error:" in info.stdout, info
        as_json = await asyncio.to_thread(_iopbot, config, "webhook", "info", "--json")
        assert json.loads(as_json.stdout.splitlines()[0])["url"] == "https://bot.example.org/telegram/webhook"

        dropped = await asyncio.to_thread(_iopbot, config, "webhook", "delete", "--drop-pending-updates")
        assert dropped.returncode == 0 and "pending updates dropped" in dropped.stdout, dropped
        assert api.webhook()["url"] is None and api.stats()["pending_updates"] == 0

        api.add_fault(Fault(method="getWebhookInfo", kind="server_error", times=1, status=502))
        failed = await asyncio.to_thread(_iopbot, config, "webhook", "info")
        assert failed.returncode == 1 and "getWebhookInfo failed: HTTP 502" in failed.stderr, failed
        assert DEFAULT_TOKEN not in failed.stderr + failed.stdout
    finally:
        await api.stop()


def test_info_reads_as_one_block() -> None:
    settings = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "1:x"})
    from datetime import UTC, datetime

    now = datetime(2026, 12, 4, 21, 10, tzinfo=UTC)
    text = render_info({"url": "https://b.example.org/hook", "pending_update_count": 12, "max_connections": 40,
                        "allowed_updates": ["message"], "last_error_date": int(now.timestamp()) - 300,
                        "last_error_message": "Wrong response from the webhook: 502 Bad Gateway"}, settings, now)
    assert text.splitlines() == [
        "webhook:          https://b.example.org/hook",
        "pending updates:  12",
        "allowed updates:  message",
        "max connections:  40",
        "last error:       2026-12-04 21:05:00 UTC (5 min ago): Wrong response from the webhook: 502 Bad Gateway",
    ]
    assert "polling mode" in render_info({"url": "", "pending_update_count": 0}, settings, now)
