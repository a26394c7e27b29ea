"""Writing a future action: one ScheduledAction row per unique key, and the planners' shared shape.

Kept apart from the outbox worker (which needs aiogram) so the operator CLI can plan rows without
paying aiogram's seconds-long import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.services.local_time import jitter_seconds, parse_hhmm, plan_daily

if TYPE_CHECKING:
    from bot.context import AppContext

log = logging.getLogger(__name__)

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


# --- planners: the shape every "one row per participant and day" planner shares ---------------------

PAGE = 1000  # participants (or reminders) per planning round trip


def plan_due(last: datetime | None, now: datetime, interval_minutes: float) -> bool:
    """A planner plans again every `[schedule] plan_interval_minutes`, at once the first time, and
    at once when the clock went back (a sandbox or test clock moved, or a host clock corrected)."""
    return last is None or now < last or now - last >= timedelta(minutes=interval_minutes)


def reachable_participants() -> tuple[Any, ...]:
    """Who gets planned rows: active, not marked unreachable, with a chat to send to."""
    return (Participant.status == ParticipantStatus.ACTIVE, Participant.unreachable_at.is_(None),
            Participant.chat_id.is_not(None))


def time_after(checkin_time: str, minutes_after: int) -> str:
    """'HH:MM' `minutes_after` the check-in time, on the same clock day (wrapping past midnight)."""
    at = parse_hhmm(checkin_time)
    total = (at.hour * 60 + at.minute + minutes_after) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


def daily_rows(kind: str, participant_id: int, timezone: str, at: str, quiet_start: str, quiet_end: str,
               days: Iterable[date], now: datetime, schedule: Any, payload: Callable[[date], dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Insert values of one row per local date in `days` at local time `at` ("HH:MM") still ahead of
    `now`, with the participant's stable jitter and quiet hours (`schedule` is `[schedule]`); key
    `<kind>:<participant>:<date>`. An unknown zone plans nothing (the participant's settings say why)."""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        return []
    jitter = jitter_seconds(participant_id, schedule.jitter_minutes)
    rows = []
    for day in days:
        planned = plan_daily(day, at, zone.key, quiet_start, quiet_end, schedule.quiet_hours_policy, jitter)
        if planned.due is not None and planned.due > now:
            rows.append(dict(kind=kind, key=f"{kind}:{participant_id}:{day.isoformat()}", due_at=planned.due,
                             intended_at=planned.intended, status=ActionStatus.PENDING,
                             participant_id=participant_id, payload=payload(day), created_at=now, attempts=0))
    return rows


async def add_missing(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose key does not exist yet: one read of the keys that do, so a refresh of
    planned rows writes only what is missing."""
    if not rows:
        return 0
    have = set((await session.scalars(select(ScheduledAction.key).where(
        ScheduledAction.key.in_([r["key"] for r in rows])))).all())
    return await insert_new(session, [r for r in rows if r["key"] not in have])


async def plan_in_pages(sessionmaker: Callable[[], AsyncSession], page: Callable[[int], Any],
                        rows_of: Callable[[Any], Iterable[dict[str, Any]]]) -> int:
    """Add the missing rows of everyone `page(after)` lists (a select of rows with an `id`, ordered
    by it, above `after`, PAGE at a time), one transaction a page; returns how many were added."""
    after, created = 0, 0
    while True:
        async with sessionmaker() as session:
            found = (await session.execute(page(after))).all()
            if not found:
                return created
            after = found[-1].id
            created += await add_missing(session, [row for item in found for row in rows_of(item)])
            await session.commit()


async def sync_pending(session: AsyncSession, participant_id: int, kind: str, wanted: dict[str, dict[str, Any]],
                       now: datetime, *, cancel: Callable[[ScheduledAction], bool], why: str) -> None:
    """Bring one participant's rows of `kind` in line with `wanted` (key → insert values): a pending
    or cancelled row that is wanted moves to its new time (a day cancelled by a pause comes back);
    a pending row no longer wanted is cancelled when `cancel(row)` says so, with `why`; what is
    missing is added. Rows sent (or being sent) stay as they are."""
    wanted = dict(wanted)
    rows = (await session.scalars(select(ScheduledAction).where(
        ScheduledAction.participant_id == participant_id, ScheduledAction.kind == kind,
        (ScheduledAction.status == ActionStatus.PENDING) | ScheduledAction.key.in_(list(wanted))))).all()
    for row in rows:
        want = wanted.pop(row.key, None)
        if row.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
            continue  # it went out (or is going out)
        if want is None:
            if row.status == ActionStatus.PENDING and cancel(row):
                row.status, row.last_error = ActionStatus.CANCELLED, why
        else:
            row.status, row.due_at, row.intended_at = ActionStatus.PENDING, want["due_at"], want["intended_at"]
            row.payload = want["payload"]
            row.last_error, row.attempts, row.lease_until, row.claimed_by = None, 0, None, None
    if wanted:
        await insert_new(session, list(wanted.values()))


class PeriodicPlanner:
    """A planner run from the scheduler tick: `plan(now)` (idempotent: rows are unique on their key)
    every `[schedule] plan_interval_minutes`. Subclasses name what they plan and may switch off.
    A failed plan is logged and tried again at the next tick: planning must never stop the rows
    that are due from going out."""

    what = "rows"  # for the log lines: "planned 12 <what>", "planning <what> failed"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_plan: datetime | None = None

    def enabled(self) -> bool:
        return True

    async def plan(self, now: datetime) -> int:
        raise NotImplementedError

    async def tick(self, now: datetime) -> None:
        if not self.enabled() or not plan_due(self._last_plan, now, self.ctx.settings.schedule.plan_interval_minutes):
            return
        try:
            created = await self.plan(now)
        except Exception:
            log.exception("planning %s failed", self.what)  # the next tick tries again
            return
        self._last_plan = now
        if created:
            log.info("planned %s %s", created, self.what)


class OneTransactionPlanner(PeriodicPlanner):
    """A periodic planner whose whole plan is one transaction: `plan_in(session, now)`."""

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        raise NotImplementedError

    async def plan(self, now: datetime) -> int:
        async with self.ctx.sessionmaker() as session:
            changed = await self.plan_in(session, now)
            await session.commit()
        return changed
