"""Tables of a participant's medication reminders and each dose's outcome (migration 0009)."""

from __future__ import annotations

from bot.db.models import Base  # noqa: F401
