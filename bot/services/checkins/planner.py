"""Planning daily check-ins: one `checkin` row per participant and local date, ahead of time.

- `plan(now)` (every `[schedule] plan_interval_minutes`, from the scheduler tick) creates the
  missing rows of the next `plan_days` days for every active participant, in pages of a
  thousand participants: one read of the participants, one read of the keys that already exist,
  one multi-row insert. Existing rows are never touched there, so any number of workers may run
  it at once (inserts that lose a race are ignored on the unique key).
- `replan_participant(...)` runs inside the transaction that changes a participant's time zone,
  check-in time, quiet hours or status: future pending rows move to the new time, rows of days
  that no longer get a check-in are cancelled, cancelled ones (a pause) come back. Rows already
  sent or answered stay as they are: there is never a second check-in for one local date.
- A day whose check-in falls in quiet hours under the "skip" policy gets a `cancelled` row that
  says so, so the gap is visible (and a later change of quiet hours can bring it back).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import AppContext
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.flows.checkin import CHECKIN
from bot.services.checkins.service import NUDGE, checkin_key, expire_runs
from bot.services.local_time import jitter_seconds, local_date, plan_daily

log = logging.getLogger(__name__)

PAGE = 1000  # participants per planning round trip
INSERT_CHUNK = 2000  # parameter sets per execute
SKIPPED_REASON = "in quiet hours (policy: skip)"


@dataclass(frozen=True)
class WantedCheckin:
    key: str
    day: date
    intended: datetime
    due: datetime | None  # None: skipped (quiet hours)


@dataclass(frozen=True)
class PlanFigures:
    participants: int = 0
    created: int = 0


class CheckinPlanner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_plan: datetime | None = None

    # --- what a participant should get ---------------------------------------------------------

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               now: datetime, memo: dict[tuple[Any, ...], list[tuple[date, datetime, datetime | None]]] | None = None,
               *, alumni_since: datetime | None = None) -> list[WantedCheckin]:
        """The check-ins of the local dates from today to today + plan_days that are still ahead.

        `memo` shares the times between participants with the same zone, time, quiet hours and
        jitter during one planning pass (a program has few distinct combinations). An alumnus
        (`alumni_since`: when they were discharged) gets one every `[discharge] alumni_every_days`,
        counted from the day of discharge, at `alumni_checkin_time` or their usual time.
        """
        if alumni_since is not None:
            checkin_time = self.ctx.settings.discharge.alumni_checkin_time or checkin_time
        jitter = jitter_seconds(participant_id, self.ctx.settings.schedule.jitter_minutes)
        signature = (timezone, checkin_time, quiet_start, quiet_end, jitter)
        times = memo.get(signature) if memo is not None else None
        if times is None:
            times = self._times(participant_id, *signature, now)
            if memo is not None:
                memo[signature] = times
        if alumni_since is not None:
            every = self.ctx.settings.discharge.alumni_every_days
            try:
                first = local_date(alumni_since, ZoneInfo(timezone))
            except (KeyError, ValueError):
                return []
            times = [t for t in times if (t[0] - first).days > 0 and (t[0] - first).days % every == 0]
        return [WantedCheckin(checkin_key(participant_id, day), day, intended, due) for day, intended, due in times]

    def _times(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               jitter: int, now: datetime) -> list[tuple[date, datetime, datetime | None]]:
        s = self.ctx.settings.schedule
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            log.error("participant %s has an unknown time zone; no check-ins planned", participant_id)
            return []
        today = local_date(now, zone)
        horizon = now + timedelta(days=s.plan_days)
        times = []
        for offset in range(s.plan_days + 1):
            day = today + timedelta(days=offset)
            planned = plan_daily(day, checkin_time, zone.key, quiet_start, quiet_end, s.quiet_hours_policy, jitter)
            moment = planned.due or planned.intended
            if now < moment <= horizon:
                times.append((day, planned.intended, planned.due))
        return times

    # --- one participant, in the caller's transaction ------------------------------------------------

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """Bring this participant's future check-in rows in line with their settings and status."""
        await session.flush()  # the caller's changes (time, zone, status) are what we plan from
        s = self.ctx.settings.schedule
        active = participant.status in (ParticipantStatus.ACTIVE, ParticipantStatus.ALUMNI)
        alumni_since = participant.discharged_at if participant.status == ParticipantStatus.ALUMNI else None
        wanted = self.wanted(participant.id, participant.timezone, participant.checkin_time,
                             participant.quiet_start, participant.quiet_end, now,
                             alumni_since=alumni_since) if active else []
        rows = (await session.scalars(
            select(ScheduledAction).where(
                ScheduledAction.participant_id == participant.id, ScheduledAction.kind == CHECKIN,
                (ScheduledAction.status == ActionStatus.PENDING)
                | ScheduledAction.key.in_([w.key for w in wanted])))).all()
        jitter = jitter_seconds(participant.id, s.jitter_minutes)
        for row in rows:
            if row.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
                continue  # sent, answered, being sent, expired: that day's check-in has happened
            if not active:
                row.status, row.last_error = ActionStatus.CANCELLED, "participant not active"
                continue
            if alumni_since is not None and row.key not in {w.key for w in wanted}:
                if row.status == ActionStatus.PENDING:
                    row.status, row.last_error = ActionStatus.CANCELLED, "not an alumni check-in day"
                continue
            checkin_time = (self.ctx.settings.discharge.alumni_checkin_time or participant.checkin_time
                            if alumni_since is not None else participant.checkin_time)
            planned = plan_daily(date.fromisoformat(str(row.payload["date"])), checkin_time,
                                 participant.timezone, participant.quiet_start, participant.quiet_end,
                                 s.quiet_hours_policy, jitter)
            if planned.due is None:
                if row.status == ActionStatus.PENDING:
                    row.status, row.last_error = ActionStatus.CANCELLED, SKIPPED_REASON
            elif planned.due <= now:
                # Moved to a time already past today: no check-in at an unexpected moment;
                # the next one comes at the new time (/checkin still works today).
                if row.status == ActionStatus.PENDING and row.due_at != planned.due:
                    row.status, row.last_error = ActionStatus.CANCELLED, "check-in time moved to a time already past"
            elif (row.status == ActionStatus.CANCELLED or row.due_at != planned.due
                  or row.intended_at != planned.intended):
                row.status = ActionStatus.PENDING
                row.due_at, row.intended_at = planned.due, planned.intended
                row.last_error, row.attempts, row.lease_until, row.claimed_by = None, 0, None, None
        existing = {row.key for row in rows}
        missing = [w for w in wanted if w.key not in existing]
        if missing:
            await self._insert(session, [self._values(participant.id, w, now) for w in missing])
        if not active:
            # Paused, stopped or discharged: no nudges either.
            for nudge in (await session.scalars(select(ScheduledAction).where(
                    ScheduledAction.participant_id == participant.id, ScheduledAction.kind == NUDGE,
                    ScheduledAction.status == ActionStatus.PENDING))).all():
                nudge.status, nudge.last_error = ActionStatus.CANCELLED, "participant not active"

    # --- everyone, in pages ---------------------------------------------------------------------------

    async def tick(self, now: datetime) -> None:
        """Run from the scheduler tick: close expired check-ins; plan ahead when it is time."""
        await expire_runs(self.ctx, now)
        interval = timedelta(minutes=self.ctx.settings.schedule.plan_interval_minutes)
        if self._last_plan is None or now - self._last_plan >= interval or now < self._last_plan:
            figures = await self.plan(now)
            self._last_plan = now
            if figures.created:
                log.info("planned %s check-ins for %s participants", figures.created, figures.participants)

    async def plan(self, now: datetime) -> PlanFigures:
        """Create the missing check-in rows of every active participant (idempotent)."""
        after, participants, created = 0, 0, 0
        memo: dict[tuple[Any, ...], list[tuple[date, datetime, datetime | None]]] = {}
        while True:
            async with self.ctx.sessionmaker() as session:
                people = (await session.execute(
                    select(Participant.id, Participant.timezone, Participant.checkin_time, Participant.quiet_start,
                           Participant.quiet_end, Participant.status, Participant.discharged_at)
                    .where(Participant.status.in_([ParticipantStatus.ACTIVE, ParticipantStatus.ALUMNI]),
                           Participant.unreachable_at.is_(None),
                           Participant.chat_id.is_not(None), Participant.id > after)
                    .order_by(Participant.id).limit(PAGE))).all()
                if not people:
                    return PlanFigures(participants, created)
                after = people[-1].id
                participants += len(people)
                wanted = [(p.id, w) for p in people
                          for w in self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start, p.quiet_end, now,
                                               memo, alumni_since=p.discharged_at
                                               if p.status == ParticipantStatus.ALUMNI else None)]
                have: set[str] = set()
                keys = [w.key for _, w in wanted]
                for chunk in _chunks(keys, 5000):
                    have.update((await session.scalars(select(ScheduledAction.key)
                                                       .where(ScheduledAction.key.in_(chunk)))).all())
                rows = [self._values(pid, w, now) for pid, w in wanted if w.key not in have]
                created += await self._insert(session, rows)
                await session.commit()

    def _values(self, participant_id: int, want: WantedCheckin, now: datetime) -> dict[str, Any]:
        skipped = want.due is None
        return dict(
            kind=CHECKIN, key=want.key, due_at=want.due or want.intended, intended_at=want.intended,
            status=ActionStatus.CANCELLED if skipped else ActionStatus.PENDING,
            last_error=SKIPPED_REASON if skipped else None, participant_id=participant_id,
            payload={"date": want.day.isoformat()}, created_at=now, attempts=0,
        )

    async def _insert(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows whose key is new; returns how many were added (a lost race adds none).

        One cached statement executed for many parameter sets (SQLAlchemy batches them into
        multi-row INSERTs): compiling a fresh multi-row VALUES per batch costs far more.
        """
        if not rows:
            return 0
        table = cast(Table, ScheduledAction.__table__)  # declared as a FromClause; it is our table
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
        added = 0
        for chunk in _chunks(rows, INSERT_CHUNK):
            added += len((await session.execute(statement, list(chunk))).all())
        return added


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
