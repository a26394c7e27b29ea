"""The request log: one record per Bot API call as the server saw it, and counts by method and outcome."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RequestRecord:
    """One Bot API call as the server saw it; `at` is the `monotonic` time of arrival."""

    seq: int
    method: str
    at: float
    chat_id: int | None = None
    status: int | None = None  # None while the call is still being answered
    outcome: str = "pending"  # ok | error | fault | blocked | rate_limited
    description: str | None = None
    retry_after: int | None = None
    fault: str | None = None
    early_retry: bool = False  # arrived before the retry_after this chat was given had passed
    message_id: int | None = None
    source: str = "http"  # or "webhook reply": a method the bot put in its answer to the webhook


class RequestLog:
    """Every call in arrival order (the newest `size`), and how each method's calls ended."""

    def __init__(self, size: int) -> None:
        self.records: deque[RequestRecord] = deque(maxlen=size)
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def filtered(self, *, method: str | None = None, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The log in arrival order, optionally for one method and/or chat."""
        return [
            asdict(r)
            for r in self.records
            if (method is None or r.method == method) and (chat_id is None or r.chat_id == chat_id)
        ]

    def by_method(self) -> dict[str, dict[str, int]]:
        by_method: dict[str, dict[str, int]] = {}
        for (method, outcome), n in sorted(self.outcomes.items()):
            by_method.setdefault(method, {})[outcome] = n
        return by_method
