"""Token buckets with an urgent lane, for staying under Telegram's limits.

Waiters are served in order, urgent ones (a crisis reply, a clinician's alert) before everything
else, so a wave of 10,000 check-ins never delays help. One pump task per bucket hands out tokens,
so waiting costs nothing per waiter.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._updated = monotonic()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._pump: asyncio.Task[None] | None = None

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    @property
    def idle(self) -> bool:
        """Full and nobody waiting: safe to forget (per-chat buckets are pruned this way)."""
        self._refill()
        return not self._waiters and self._tokens >= self.burst

    async def acquire(self, *, urgent: bool = False) -> None:
        self._refill()
        if not self._waiters and self._tokens >= 1:
            self._tokens -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (0 if urgent else 1, next(self._seq), future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve())
        await future

    def give_back(self) -> None:
        """Return a token taken but not used (the message was not sent after all)."""
        self._refill()
        self._tokens = min(self.burst, self._tokens + 1)
        if self._waiters and (self._pump is None or self._pump.done()):
            self._pump = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        while self._waiters:
            self._refill()
            if self._tokens >= 1:
                _, _, future = heapq.heappop(self._waiters)
                if future.done():  # the waiter was cancelled
                    continue
                self._tokens -= 1
                future.set_result(None)
            else:
                await asyncio.sleep((1 - self._tokens) / self.rate)


class ChatBuckets:
    """One bucket per chat, created on demand and forgotten when idle."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[int | str, TokenBucket] = {}

    def get(self, chat_id: int | str) -> TokenBucket:
        bucket = self._buckets.get(chat_id)
        if bucket is None:
            if len(self._buckets) > 50_000:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.idle}
            bucket = self._buckets[chat_id] = TokenBucket(self.rate, self.burst)
        return bucket
