"""aiogram FSM storage in our database, so a half-finished dialog survives a restart.

Inside an update, state is read and written through the update's own session (one transaction,
one commit point, and no second SQLite writer waiting on the first). Outside an update, each call
uses a short session of its own. The unit of work reads the row (or that there is none) with who
is writing, in one statement (bot/services/inbound.py `who_is_writing`), and hands it over with
`preloaded`: aiogram's own read of the state then costs no statement.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import DialogState

current_session: contextvars.ContextVar[AsyncSession | None] = contextvars.ContextVar(
    "iopbot_current_session", default=None
)


def storage_key(key: StorageKey) -> str:
    return f"{key.bot_id}:{key.chat_id}:{key.user_id}:{key.thread_id or ''}:{key.destiny}"


def private_chat_key(bot_id: int, chat_id: int, user_id: int) -> str:
    """The key aiogram's FSM (strategy USER_IN_CHAT, the default destiny) uses in a private chat."""
    return storage_key(StorageKey(bot_id=bot_id, chat_id=chat_id, user_id=user_id))


_PRELOADED = "iopbot_dialog_rows"


def preloaded(session: AsyncSession, key: str, row: DialogState | None) -> None:
    """What this session already knows of dialog `key`: its row, or None for "there is none" (so
    reading it costs no statement). Read in this session's transaction, so it is as fresh as a read."""
    session.info.setdefault(_PRELOADED, {})[key] = row


class DatabaseStorage(BaseStorage):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[tuple[AsyncSession, bool]]:
        session = current_session.get()
        if session is not None:
            yield session, False
            return
        async with self._sessionmaker() as own:
            yield own, True

    async def _row(self, session: AsyncSession, key: StorageKey) -> DialogState | None:
        known: dict[str, DialogState | None] = session.info.get(_PRELOADED, {})
        name = storage_key(key)
        if name in known:
            return known[name]
        return await session.get(DialogState, name)

    @staticmethod
    def _added(session: AsyncSession, row: DialogState) -> None:
        session.add(row)
        known: dict[str, DialogState | None] | None = session.info.get(_PRELOADED)
        if known is not None and row.key in known:
            known[row.key] = row

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._session() as (session, own):
            row = await self._row(session, key)
            if row is None:
                self._added(session, DialogState(key=storage_key(key), state=value, data="{}"))
            else:
                row.state = value
            if own:
                await session.commit()
            else:
                await session.flush()

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as (session, _):
            row = await self._row(session, key)
            return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        encoded = json.dumps(dict(data))
        async with self._session() as (session, own):
            row = await self._row(session, key)
            if row is None:
                self._added(session, DialogState(key=storage_key(key), state=None, data=encoded))
            else:
                row.data = encoded
            if own:
                await session.commit()
            else:
                await session.flush()

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as (session, _):
            row = await self._row(session, key)
            return json.loads(row.data) if row and row.data else {}

    async def close(self) -> None:
        return None
