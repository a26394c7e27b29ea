"""Tables of the care team's messages to a participant and the replies (migration 0010)."""

from __future__ import annotations

from bot.db.models import Base  # noqa: F401
