"""Writing a future action: one ScheduledAction row per unique key.

Kept apart from the outbox worker (which needs aiogram) so the operator CLI can plan rows without
paying aiogram's seconds-long import.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import ActionStatus, ScheduledAction

# Rows per INSERT: PostgreSQL (asyncpg) takes at most 32,767 arguments in one statement, and a
# row has about a dozen columns.
INSERT_CHUNK = 500


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    intended_at: datetime | None = None,
    participant_id: int | None = None,
    staff_id: int | None = None,
    escalation_id: int | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime,
) -> bool:
    """Add a row unless one with the same key exists. Returns True when a row was added."""
    values = dict(
        kind=kind, key=key, due_at=due_at, intended_at=intended_at or due_at, status=ActionStatus.PENDING,
        participant_id=participant_id, staff_id=staff_id, escalation_id=escalation_id, payload=payload or {},
        created_at=now, attempts=0,
    )
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(ScheduledAction).values(**values).on_conflict_do_nothing(index_elements=["key"])
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert many rows (as insert values), skipping any whose key exists (a lost race adds none),
    in chunks of INSERT_CHUNK; returns how many were added."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = 0
    for start in range(0, len(rows), INSERT_CHUNK):
        result = await session.execute(insert(ScheduledAction).values(list(rows[start:start + INSERT_CHUNK]))
                                       .on_conflict_do_nothing(index_elements=["key"]))
        added += max(0, int(result.rowcount or 0))  # type: ignore[attr-defined]
    return added
