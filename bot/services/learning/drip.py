"""The psychoeducation drip: one short read every `[content] drip_every_days`, by program week.

- The planner (run from the scheduler tick, every `[schedule] plan_interval_minutes`) adds one
  `content_drip` row per active participant and local date (key `content_drip:<participant>:<date>`,
  so any number of workers may plan at once), for today and tomorrow, at the check-in time plus
  `drip_minutes_after_checkin` in the participant's zone. A time in quiet hours is deferred to
  their end, or the day skipped, per `[schedule] quiet_hours_policy`, as for check-ins.
- What is sent is chosen when the row comes due (so a new track or new content counts at once):
  the first snippet (by week, then order, then title) for the participant's track whose week has
  come and that they have not had yet (from the drip or /learn). Program week 1 starts on the day
  they consented, in their zone. A snippet without `tracks` is for every track; one without
  `week`, for any week. While the program lists no tracks (`[content] tracks`), or for a
  participant without one, every snippet is theirs, as before tracks existed.
- When their track's snippets run out, the snippets for every track carry on (they are in the same
  order, so nothing is held back for them); when nothing is left by their week, the day is
  skipped and nothing is sent, and the week after brings more. Never another track's snippets
  (a mood track has no use for craving texts), never a snippet before its week, never a repeat.
- Paused, stopped or unreachable participants get nothing: no rows are planned for them, a
  status change cancels their pending rows, and a row that comes due anyway is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.library import Library
from bot.content.model import Snippet
from bot.context import AppContext
from bot.db.content_models import CONTENT_DRIP, DeliveredVia
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction
from bot.messaging import Messenger, Replies
from bot.services.learning.receipts import delivered_ids, feedback_prompt, record_delivery
from bot.services.learning.shelf import content_library, snippet_messages
from bot.services.local_time import jitter_seconds, local_date, now_in_quiet_hours, parse_hhmm, plan_daily
from bot.services.scheduling.outbox import Delivered, Skip

log = logging.getLogger(__name__)

PAGE = 1000  # participants per planning round trip
INSERT_CHUNK = 500


def drip_key(participant_id: int, day: date) -> str:
    return f"{CONTENT_DRIP}:{participant_id}:{day.isoformat()}"


def program_week(start: datetime | None, day: date, zone: ZoneInfo) -> int:
    """Week 1 is the first seven days from `start` (their consent), in their zone."""
    if start is None:
        return 1
    return max((day - local_date(start, zone)).days, 0) // 7 + 1


def drip_time(checkin_time: str, minutes_after: int) -> str:
    """'HH:MM' of the drip: after the check-in, on the same clock day (wrapping past midnight)."""
    at = parse_hhmm(checkin_time)
    total = (at.hour * 60 + at.minute + minutes_after) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


def drip_track(ctx: AppContext, participant: Participant) -> str | None:
    """The track that picks this participant's reads; None (every snippet) while the program lists
    no tracks or they have none. A track the program no longer lists still filters: they get the
    snippets for every track until the care team sets a current one."""
    return participant.track if ctx.settings.content.tracks else None


def pick_snippet(library: Library, locale: str, track: str | None, week: int, had: Collection[str]
                 ) -> Snippet | None:
    """The daily read: the first snippet (by week, order, title) for `track` whose week has come
    by program week `week` and that is not in `had`; None when there is nothing new."""
    return next((s for s in library.snippets(locale, track=track, up_to_week=week) if s.id not in had), None)


async def next_snippet(session: AsyncSession, ctx: AppContext, participant: Participant, week: int
                       ) -> Snippet | None:
    """The first snippet for their track, relevant by `week`, that this participant has not had yet."""
    had = await delivered_ids(session, participant.id)
    return pick_snippet(content_library(ctx), participant.locale, drip_track(ctx, participant), week, had)


class DripPlanner:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_plan: datetime | None = None

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               consented_at: datetime | None, now: datetime) -> list[dict[str, Any]]:
        """The rows (as insert values) of today and tomorrow that are still ahead."""
        c, s = self.ctx.settings.content, self.ctx.settings.schedule
        if c.drip_every_days <= 0:
            return []
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            return []
        start = local_date(consented_at, zone) if consented_at else None
        at = drip_time(checkin_time, c.drip_minutes_after_checkin)
        jitter = jitter_seconds(participant_id, s.jitter_minutes)
        today = local_date(now, zone)
        rows = []
        for day in (today, today + timedelta(days=1)):
            if start is not None and (day - start).days % c.drip_every_days:
                continue
            planned = plan_daily(day, at, zone.key, quiet_start, quiet_end, s.quiet_hours_policy, jitter)
            if planned.due is not None and planned.due > now:
                rows.append(dict(kind=CONTENT_DRIP, key=drip_key(participant_id, day), due_at=planned.due,
                                 intended_at=planned.intended, status=ActionStatus.PENDING,
                                 participant_id=participant_id, payload={"date": day.isoformat()},
                                 created_at=now, attempts=0))
        return rows

    async def tick(self, now: datetime) -> None:
        """From the scheduler tick: plan when it is time (the rows are idempotent on their key)."""
        interval = timedelta(minutes=self.ctx.settings.schedule.plan_interval_minutes)
        if self._last_plan is None or now - self._last_plan >= interval or now < self._last_plan:
            created = await self.plan(now)
            self._last_plan = now
            if created:
                log.info("planned %s content drip rows", created)

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active participant; returns how many were added."""
        after, created = 0, 0
        while True:
            async with self.ctx.sessionmaker() as session:
                people = (await session.execute(
                    select(Participant.id, Participant.timezone, Participant.checkin_time, Participant.quiet_start,
                           Participant.quiet_end, Participant.consented_at)
                    .where(Participant.status == ParticipantStatus.ACTIVE, Participant.unreachable_at.is_(None),
                           Participant.chat_id.is_not(None), Participant.id > after)
                    .order_by(Participant.id).limit(PAGE))).all()
                if not people:
                    return created
                after = people[-1].id
                rows = [row for p in people for row in self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start,
                                                                   p.quiet_end, p.consented_at, now)]
                # One read of the keys that exist, so a refresh writes only what is missing.
                have = set((await session.scalars(select(ScheduledAction.key).where(
                    ScheduledAction.key.in_([r["key"] for r in rows])))).all()) if rows else set()
                created += await _insert(session, [r for r in rows if r["key"] not in have])
                await session.commit()

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """A participant's times or status changed: pending rows move, or are cancelled when not active;
        a day cancelled by a pause comes back on resume."""
        await session.flush()
        active = participant.status == ParticipantStatus.ACTIVE
        wanted = {row["key"]: row for row in self.wanted(
            participant.id, participant.timezone, participant.checkin_time, participant.quiet_start,
            participant.quiet_end, participant.consented_at, now)} if active else {}
        rows = (await session.scalars(select(ScheduledAction).where(
            ScheduledAction.participant_id == participant.id, ScheduledAction.kind == CONTENT_DRIP,
            (ScheduledAction.status == ActionStatus.PENDING) | ScheduledAction.key.in_(list(wanted))))).all()
        for row in rows:
            want = wanted.pop(row.key, None)
            if row.status not in (ActionStatus.PENDING, ActionStatus.CANCELLED):
                continue  # that day's read went out (or is going out)
            if want is None:
                if row.status == ActionStatus.PENDING and (not active or row.due_at > now):
                    row.status, row.last_error = ActionStatus.CANCELLED, "participant not active or time changed"
            else:
                row.status, row.due_at, row.intended_at = ActionStatus.PENDING, want["due_at"], want["intended_at"]
                row.last_error, row.attempts, row.lease_until, row.claimed_by = None, 0, None, None
        if wanted:
            await _insert(session, list(wanted.values()))


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = 0
    for start in range(0, len(rows), INSERT_CHUNK):
        result = await session.execute(insert(ScheduledAction).values(rows[start:start + INSERT_CHUNK])
                                       .on_conflict_do_nothing(index_elements=["key"]))
        added += max(0, int(result.rowcount or 0))  # type: ignore[attr-defined]
    return added


async def send_drip(ctx: AppContext, messenger: Messenger, session: AsyncSession,
                    row: ScheduledAction) -> Delivered | None:
    """ActionSender for `content_drip` rows: today's snippet, then "Was this helpful?"."""
    participant = await session.get(Participant, row.participant_id) if row.participant_id else None
    if participant is None or not participant.receives_messages or participant.chat_id is None:
        raise Skip("participant paused, stopped or unreachable")
    if now_in_quiet_hours(ctx.clock.now(), participant.timezone, participant.quiet_start, participant.quiet_end):
        raise Skip("in quiet hours")
    day = date.fromisoformat(str(row.payload["date"]))
    week = program_week(participant.consented_at, day, ZoneInfo(participant.timezone))
    snippet = await next_snippet(session, ctx, participant, week)
    if snippet is None:
        # The reason is stored and logged: it says whether a track applied, never which (Part 2).
        on_track = " on their track" if drip_track(ctx, participant) else ""
        raise Skip(f"nothing new to read by program week {week}{on_track}")
    locale = participant.locale
    replies = Replies()
    for text in snippet_messages(snippet, lead=ctx.t("drip.lead", locale)):
        replies.text(participant.chat_id, text)
    receipt = await record_delivery(session, ctx, participant.id, snippet.id, DeliveredVia.DRIP, drip_date=day)
    text, kb = feedback_prompt(ctx, locale, snippet.id, receipt)
    replies.text(participant.chat_id, text, kb)
    sent = await replies.deliver(messenger)
    return Delivered(sent.chat_id, sent.message_id) if sent else None
