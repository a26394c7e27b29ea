"""Cohort group chats (#17): a Telegram group linked to a cohort, its members, the agreement (migration 0015)."""

from __future__ import annotations

from bot.db.models import Base  # noqa: F401
