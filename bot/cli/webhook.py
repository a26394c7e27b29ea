"""`iopbot webhook set|delete|info`: register the bot's webhook with Telegram once, for all the
webhook workers behind the load balancer (no worker registers it at start-up), remove it, or show
what Telegram has (pending updates, the last delivery error).

Calls the Bot API with plain aiohttp: no aiogram, so the command answers in well under a second."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from bot.cli.base import settings_from
from bot.config import ConfigError, Settings

# The kinds of update the bot handles: what `iopbot run` asks getUpdates for (the dispatcher's
# resolve_used_update_types(); tests/unit/test_webhook_cli.py keeps the two equal). Edits are
# assessed for distress like new messages, so edited_message must be here. The cohort's group
# chats (peer groups) need the member kinds: join requests to approve, members who join or leave,
# and the bot's own membership (added, made admin, removed). Telegram never sends chat_member
# unless it is asked for by name.
ALLOWED_UPDATES: tuple[str, ...] = ("callback_query", "chat_join_request", "chat_member", "edited_message",
                                    "message", "my_chat_member")


class BotApiFailed(Exception):
    """The Bot API refused the call or could not be reached: the message says which, without the token."""


async def call_bot_api(settings: Settings, method: str, params: dict[str, Any] | None = None) -> Any:
    """One Bot API call at `[telegram] api_base`; its result, or BotApiFailed."""
    import aiohttp

    token = settings.secrets.bot_token
    if not token:
        raise ConfigError("BOT_TOKEN is not set (the bot's token from @BotFather)")
    url = f"{settings.telegram.api_base.rstrip('/')}/bot{token}/{method}"
    timeout = aiohttp.ClientTimeout(total=settings.telegram.request_timeout_seconds)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.post(url, json=params or {}) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BotApiFailed(f"{method}: could not reach the Bot API at {settings.telegram.api_base} "
                           f"({type(exc).__name__})") from None
    if not isinstance(body, dict) or not body.get("ok"):
        description = body.get("description") if isinstance(body, dict) else None
        raise BotApiFailed(f"{method} failed: HTTP {status}: {description or 'no description'}")
    return body.get("result")


def _when(epoch: Any, now: datetime) -> str:
    at = datetime.fromtimestamp(int(epoch), UTC)
    minutes = max(0, int((now - at).total_seconds() // 60))
    return f"{at:%Y-%m-%d %H:%M:%S} UTC ({minutes} min ago)"


def render_info(info: dict[str, Any], settings: Settings, now: datetime) -> str:
    """getWebhookInfo as one readable block."""
    url = info.get("url") or ""
    lines = [f"webhook:          {url or '(none: updates wait for getUpdates, i.e. polling mode)'}"]
    wanted = settings.telegram.webhook_url
    if url and wanted and url != wanted:
        lines.append(f"                  not [telegram] webhook_url ({wanted}): run `iopbot webhook set`")
    lines.append(f"pending updates:  {info.get('pending_update_count', 0)}")
    if "allowed_updates" in info:
        lines.append(f"allowed updates:  {', '.join(info['allowed_updates']) or '(Telegram default)'}")
    if "max_connections" in info:
        lines.append(f"max connections:  {info['max_connections']}")
    if info.get("ip_address"):
        lines.append(f"ip address:       {info['ip_address']}")
    if info.get("last_error_date"):
        lines.append(f"last error:       {_when(info['last_error_date'], now)}: "
                     f"{info.get('last_error_message') or '(no message)'}")
    else:
        lines.append("last error:       none")
    if info.get("last_synchronization_error_date"):
        lines.append(f"last sync error:  {_when(info['last_synchronization_error_date'], now)}")
    return "\n".join(lines)


def _now() -> datetime:
    from bot.clock import clock_from_environment

    return clock_from_environment().now()


def cmd_webhook_set(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    url = settings.telegram.webhook_url
    if not url:
        print("[telegram] webhook_url is not set: the HTTPS address of your load balancer, like "
              '"https://bot.example.org/telegram/webhook"', file=sys.stderr)
        return 2
    secret = settings.secrets.webhook_secret
    if not secret:
        print("IOPBOT_WEBHOOK_SECRET is not set: the same secret every webhook worker checks "
              "(letters, digits, _ and -; e.g. `openssl rand -hex 32`)", file=sys.stderr)
        return 2
    params: dict[str, Any] = {"url": url, "secret_token": secret, "allowed_updates": list(ALLOWED_UPDATES),
                              "drop_pending_updates": bool(args.drop_pending_updates)}
    if args.max_connections:
        params["max_connections"] = args.max_connections

    async def go() -> dict[str, Any]:
        await call_bot_api(settings, "setWebhook", params)
        return dict(await call_bot_api(settings, "getWebhookInfo"))

    try:
        info = asyncio.run(go())
    except BotApiFailed as exc:
        print(f"webhook not set: {exc}", file=sys.stderr)
        return 1
    dropped = " (pending updates dropped)" if args.drop_pending_updates else ""
    print(f"webhook set{dropped}: Telegram now delivers {', '.join(ALLOWED_UPDATES)} to {url}")
    print(render_info(info, settings, _now()))
    return 0


def cmd_webhook_delete(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        asyncio.run(call_bot_api(settings, "deleteWebhook",
                                 {"drop_pending_updates": bool(args.drop_pending_updates)}))
    except BotApiFailed as exc:
        print(f"webhook not deleted: {exc}", file=sys.stderr)
        return 1
    dropped = "; pending updates dropped" if args.drop_pending_updates else \
        "; pending updates wait for a poller (`iopbot run --mode polling`)"
    print(f"webhook deleted{dropped}")
    return 0


def cmd_webhook_info(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        info = asyncio.run(call_bot_api(settings, "getWebhookInfo"))
    except BotApiFailed as exc:
        print(f"no webhook info: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, sort_keys=True) if args.json else render_info(dict(info), settings, _now()))
    return 0


def register(sub: Any, add: Any) -> None:
    webhook = sub.add_parser("webhook", help="register the bot's webhook with Telegram (once), remove it, "
                                             "or show its state").add_subparsers(dest="webhook_command", required=True)
    set_ = add("set", cmd_webhook_set, "point Telegram at [telegram] webhook_url with IOPBOT_WEBHOOK_SECRET", webhook)
    set_.add_argument("--drop-pending-updates", action="store_true",
                      help="throw away the updates Telegram holds for the bot (default: keep them)")
    set_.add_argument("--max-connections", type=int, choices=range(1, 101), metavar="1-100",
                      help="Telegram's simultaneous connections to the webhook (default: Telegram's, 40)")
    delete = add("delete", cmd_webhook_delete, "remove the webhook (for polling mode)", webhook)
    delete.add_argument("--drop-pending-updates", action="store_true",
                        help="throw away the updates Telegram holds for the bot (default: keep them)")
    info = add("info", cmd_webhook_info, "Telegram's view: the URL, pending updates, the last delivery error",
               webhook)
    info.add_argument("--json", action="store_true", help="getWebhookInfo's answer as JSON")
