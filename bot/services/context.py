"""What every part of the running bot shares: settings, clock, texts, database, and helpers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.content.i18n import Texts


@dataclass
class KnownPerson:
    role: str  # "staff" | "participant"
    locale: str


class Directory:
    """Telegram user id → role and locale, remembered in memory.

    The safety gate runs before any database access, so that the crisis reply can go out even
    when the database is down; it uses this to pick the language and to leave staff alone.
    A cold cache only means the default language; it never blocks a crisis reply.
    """

    def __init__(self) -> None:
        self._people: dict[int, KnownPerson] = {}

    def remember(self, telegram_user_id: int, actor: Any) -> None:
        from bot.db.models import Staff

        role = "staff" if isinstance(actor, Staff) else "participant"
        self._people[telegram_user_id] = KnownPerson(role, actor.locale)

    def forget(self, telegram_user_id: int) -> None:
        self._people.pop(telegram_user_id, None)

    def get(self, telegram_user_id: int) -> KnownPerson | None:
        return self._people.get(telegram_user_id)


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    texts: Texts
    sessionmaker: async_sessionmaker[AsyncSession]
    directory: Directory = field(default_factory=Directory)
    # Set by the outbox worker: wake it so rows due now go out without waiting for the tick.
    outbox_wakeups: list[asyncio.Event] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def wake_outbox(self) -> None:
        for wakeup in self.outbox_wakeups:
            wakeup.set()

    def t(self, key: str, locale: str, /, **values: Any) -> str:
        """A UI text; the crisis numbers for the locale are always available as placeholders."""
        crisis = self.settings.crisis_for(locale)
        merged = {"emergency": crisis.emergency_number, "crisis_line": crisis.call_or_text, **values}
        return self.texts.get(key, locale, **merged)
