"""The errors of the local Bot API: Telegram-shaped error answers, and the control API's own."""

from __future__ import annotations

from typing import Any


class BotAPIError(Exception):
    """An error answer in Telegram's shape; `outcome` says why, for the request log."""

    def __init__(
        self, status: int, description: str, *, retry_after: int | None = None, outcome: str = "error"
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after
        self.outcome = outcome

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class ControlError(Exception):
    """A control-API call that cannot be done as asked (HTTP 400 with the reason)."""


class BotAPIControlError(Exception):
    """The control API refused a call (raised by `BotAPIControl`)."""


class BotAPIWaitTimeout(AssertionError):
    """`wait_for_messages` gave up; the message says what the chat had received."""


def bad_request(detail: str) -> BotAPIError:
    return BotAPIError(400, f"Bad Request: {detail}")


def too_many_requests(retry_after: int, outcome: str) -> BotAPIError:
    return BotAPIError(
        429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after, outcome=outcome
    )


def wait_timeout(chat_id: int, count: int, timeout: float, messages: list[dict[str, Any]]) -> BotAPIWaitTimeout:
    """The error of a wait for `count` messages that saw only `messages` (in-process or over HTTP)."""
    seen = [
        f"#{m['message_id']} {m['kind']}: {(m['visible_text'] or m['caption'] or '')[:80]!r}"
        for m in messages
    ]
    expected = f"expected {count} message(s) from the bot within {timeout}s"
    return BotAPIWaitTimeout(f"chat {chat_id}: {expected}, got {len(messages)}: {seen}")
