"""Tables of a participant's goals and their weekly progress ratings (migration 0008)."""

from __future__ import annotations

from bot.db.models import Base  # noqa: F401
