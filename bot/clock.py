"""The one place that says what time it is.

Everything that needs "now" asks a Clock. Production uses SystemClock; tests and the sandbox use a
clock they can move, so nothing ever sleeps to wait for wall time.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until moved: for in-process tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


class OffsetFileClock:
    """Wall time plus an offset (seconds) read from a file, shared by several processes.

    Used by end-to-end tests and the sandbox to move time in a running bot: write a new offset
    to the file and every process sees it on its next `now()`. The file is re-read only when its
    modification time changes, so `now()` stays cheap.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime_ns = -1
        self._offset = 0.0

    def _refresh(self) -> None:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            self._offset = 0.0
            return
        if mtime != self._mtime_ns:
            text = self._path.read_text().strip()
            self._offset = float(text) if text else 0.0
            self._mtime_ns = mtime

    def now(self) -> datetime:
        self._refresh()
        return datetime.fromtimestamp(time.time() + self._offset, UTC)

    @staticmethod
    def write_offset(path: Path, seconds: float) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(repr(float(seconds)))
        os.replace(tmp, path)


def clock_from_environment() -> Clock:
    """The system clock, or (tests and the sandbox only) a clock moved through a shared file named
    by IOPBOT_CLOCK_FILE. Here, not in bot.runtime, so that operator commands need no aiogram."""
    path = os.environ.get("IOPBOT_CLOCK_FILE")
    return OffsetFileClock(Path(path)) if path else SystemClock()
