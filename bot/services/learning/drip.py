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
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.library import Library
from bot.content.model import Snippet
from bot.context import AppContext
from bot.db.content_models import CONTENT_DRIP, DeliveredVia
from bot.db.models import Participant, ScheduledAction
from bot.messaging import Messenger, Replies
from bot.services.learning.receipts import delivered_ids, feedback_prompt, record_delivery
from bot.services.learning.shelf import content_library, snippet_messages
from bot.services.local_time import local_date, now_in_quiet_hours
from bot.services.scheduling.outbox import Delivered, Skip
from bot.services.scheduling.rows import (
    PAGE,
    PeriodicPlanner,
    daily_rows,
    plan_in_pages,
    reachable_participants,
    sync_pending,
    time_after,
)

log = logging.getLogger(__name__)



def drip_key(participant_id: int, day: date) -> str:
    return f"{CONTENT_DRIP}:{participant_id}:{day.isoformat()}"


def program_week(start: datetime | None, day: date, zone: ZoneInfo) -> int:
    """Week 1 is the first seven days from `start` (their consent), in their zone."""
    if start is None:
        return 1
    return max((day - local_date(start, zone)).days, 0) // 7 + 1


def drip_time(checkin_time: str, minutes_after: int) -> str:
    """'HH:MM' of the drip: after the check-in, on the same clock day (wrapping past midnight)."""
    return time_after(checkin_time, minutes_after)


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


class DripPlanner(PeriodicPlanner):
    what = "content drip rows"

    def enabled(self) -> bool:
        return self.ctx.settings.content.drip_every_days > 0

    def wanted(self, participant_id: int, timezone: str, checkin_time: str, quiet_start: str, quiet_end: str,
               consented_at: datetime | None, now: datetime) -> list[dict[str, Any]]:
        """The rows (as insert values) of today and tomorrow that are still ahead."""
        c = self.ctx.settings.content
        if c.drip_every_days <= 0:
            return []
        try:
            zone = ZoneInfo(timezone)
        except (KeyError, ValueError):
            return []
        start = local_date(consented_at, zone) if consented_at else None
        today = local_date(now, zone)
        days = [d for d in (today, today + timedelta(days=1))
                if start is None or not (d - start).days % c.drip_every_days]
        return daily_rows(CONTENT_DRIP, participant_id, timezone, drip_time(checkin_time, c.drip_minutes_after_checkin),
                          quiet_start, quiet_end, days, now, self.ctx.settings.schedule,
                          lambda day: {"date": day.isoformat()})

    async def plan(self, now: datetime) -> int:
        """Add the missing rows of every active participant; returns how many were added."""
        return await plan_in_pages(
            self.ctx.sessionmaker,
            lambda after: select(Participant.id, Participant.timezone, Participant.checkin_time,
                                 Participant.quiet_start, Participant.quiet_end, Participant.consented_at)
            .where(*reachable_participants(), Participant.id > after).order_by(Participant.id).limit(PAGE),
            lambda p: self.wanted(p.id, p.timezone, p.checkin_time, p.quiet_start, p.quiet_end, p.consented_at, now))

    async def replan_participant(self, session: AsyncSession, participant: Participant, now: datetime) -> None:
        """A participant's times or status changed: pending rows move, or are cancelled when not active;
        a day cancelled by a pause comes back on resume."""
        await session.flush()
        active = participant.receives_messages
        wanted = {row["key"]: row for row in self.wanted(
            participant.id, participant.timezone, participant.checkin_time, participant.quiet_start,
            participant.quiet_end, participant.consented_at, now)} if active else {}
        await sync_pending(session, participant.id, CONTENT_DRIP, wanted, now,
                           cancel=lambda row: not active or row.due_at > now,
                           why="participant not active or time changed")


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
