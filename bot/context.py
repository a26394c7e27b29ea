"""What every part of the running bot shares: settings, clock, texts, database, and helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.content.i18n import Texts
from bot.db.models import Participant, Staff

Part = TypeVar("Part")


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
        role = "staff" if isinstance(actor, Staff) else "participant"
        self._people[telegram_user_id] = KnownPerson(role, actor.locale)

    def forget(self, telegram_user_id: int) -> None:
        self._people.pop(telegram_user_id, None)

    def get(self, telegram_user_id: int) -> KnownPerson | None:
        return self._people.get(telegram_user_id)


class Parts:
    """The parts of the running bot that features share, one of each type, looked up by type:
    `ctx.parts.get(FlowEngine)`, `ctx.parts.get(ContentStore)`, `ctx.parts.get(CheckinPlanner)`.

    Keyed by type rather than held in named fields because the parts' modules import this one
    (a field typed `FlowEngine` here would be an import cycle). `install_*` functions add them;
    bot/runtime.py `assemble` calls those once."""

    def __init__(self) -> None:
        self._parts: dict[type, object] = {}

    def add(self, part: Part) -> Part:
        kind = type(part)
        if kind in self._parts:
            raise ValueError(f"a {kind.__name__} is installed already")
        self._parts[kind] = part
        return part

    def find(self, kind: type[Part]) -> Part | None:
        part = self._parts.get(kind)
        assert part is None or isinstance(part, kind)
        return part

    def get(self, kind: type[Part]) -> Part:
        part = self.find(kind)
        if part is None:
            raise LookupError(f"no {kind.__name__} is installed (bot/runtime.py assemble installs every part)")
        return part


class Replanner(Protocol):
    """A planner of future rows that must recompute a participant's rows in the transaction that
    changed their time zone, check-in time, quiet hours or status (bot/services/scheduling/hooks.py)."""

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None: ...


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    texts: Texts
    sessionmaker: async_sessionmaker[AsyncSession]
    directory: Directory = field(default_factory=Directory)
    # Set by the outbox worker: wake it so rows due now go out without waiting for the tick.
    outbox_wakeups: list[asyncio.Event] = field(default_factory=list)
    # The flow engine, the content library, the planners: see `Parts`.
    parts: Parts = field(default_factory=Parts)
    # Told when a participant's schedule changes (check-ins, session reminders, daily read).
    replanners: list[Replanner] = field(default_factory=list)
    # Told when a page reached a clinician (bot/services/escalation/paging.py): the Telegram edge
    # holds ordinary updates back while a page just written is on its way, and stops holding then.
    page_listeners: list[Callable[[], None]] = field(default_factory=list)

    def wake_outbox(self) -> None:
        for wakeup in self.outbox_wakeups:
            wakeup.set()

    def page_sent(self) -> None:
        for listener in self.page_listeners:
            listener()

    def t(self, key: str, locale: str, /, **values: Any) -> str:
        """A UI text; the crisis numbers for the locale are always available as placeholders."""
        crisis = self.settings.crisis_for(locale)
        merged = {"emergency": crisis.emergency_number, "crisis_line": crisis.call_or_text, **values}
        return self.texts.get(key, locale, **merged)
