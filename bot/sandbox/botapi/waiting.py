"""How waits end: a pulse that wakes whoever waits for a change, and the server's shutdown, which
ends sleeps and long polls at once instead of holding the shutdown for their whole timeout."""

from __future__ import annotations

import asyncio
import contextlib


class Pulse:
    """Wakes everyone waiting now; later waiters wait for the next pulse (they re-check state)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, at_most: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), at_most)


class Shutdown:
    """Whether the server is closing; `sleep` ends early when it starts to."""

    def __init__(self) -> None:
        self.closing = False
        self._stopping = Pulse()

    def begin(self) -> None:
        self.closing = True
        self._stopping.fire()

    async def sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server shuts down."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.closing and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await self._stopping.wait(left)
