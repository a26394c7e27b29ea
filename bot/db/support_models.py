"""Support persons (#17): family or friends a participant invites, with both consents (migration 0016)."""

from __future__ import annotations

from bot.db.models import Base  # noqa: F401
