"""Moving the sandbox bot's clock forward, so a visitor can watch a day happen in a minute.

The bot and the local Bot API read one `OffsetFileClock`; moving time means writing a new offset
to its file. A long jump is walked in steps (at most an hour, and stopping at every row that
falls due on the way) with one scheduler pass after each step, so everything due in between is
sent in order at its own time instead of being skipped as "missed while the bot was down".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import OffsetFileClock
from bot.db.models import ActionStatus, Participant, ParticipantStatus, ScheduledAction

log = logging.getLogger(__name__)

STEP = timedelta(hours=1)
MAX_STEPS = 500  # a bound on one move, whatever the database holds
# Rows of these kinds are a participant's check-in (the scheduling engine's names).
CHECKIN_KIND_MARKERS = ("checkin", "check_in")

# What the visitor reads for each kind of row the bot registers with its outbox worker ("Next: a
# medication reminder at Tue 08:00"). tests/flows/test_sandbox_timetravel.py checks that every kind the
# running bot registers has one; a participant's check-in kinds are named by CHECKIN_KIND_MARKERS instead.
KIND_LABELS = {
    # An update's replies, kept until sent (bot/services/scheduling/replies.py): one waits here only
    # when the worker that wrote it stopped before sending it
    "reply": "a reply still to be sent",
    # Safety alerts (bot/services/escalation)
    "alert_step": "a safety alert page",
    "alert_plan": "the next round of a safety alert",
    "alert_follow_up": "a note that someone with an open alert wrote again",
    "crisis_line": "a note to the participant that their care team was told",
    "staff_notice": "a note to staff",
    "coverage_notice": "the daily coverage note to leads",
    # Participants' own rhythm
    "instrument": "a weekly questionnaire",
    "goal_progress": "the weekly question on goals",
    "goal_change_notice": "a note that a goal was changed with the clinician",
    "med_reminder": "a medication reminder",
    "exercise_step": "the next step of an exercise",
    "content_drip": "a daily read",
    "goodbye": "a goodbye after discharge",
    # Sessions (bot/services/calendar) and /techhelp
    "session_reminder": "a session reminder",
    "session_update": "a note that a session changed",
    "attendance_notice": "a can't-attend note to the facilitator",
    "techhelp_notice": "a can't-connect note to the facilitator",
    "techhelp_told": "a note that the facilitator was told",
    # The care team
    "outreach_message": "a message from the care team",
    "outreach_reply": "a participant's reply to the care team",
    "outreach_staff_line": "a note that a care team message did not go",
    "session_brief": "a pre-session brief",
    "daily_digest": "a clinician's daily digest",
    # Support persons (bot/services/support)
    "support_notice": "a note about a support person",
    "support_update": "a support person's weekly update",
    "support_checkin": "a support person's weekly check-in",
    "family_reminder": "a family-session reminder to a support person",
    "support_concern": "a note to the clinician about a support person",
    # The cohort's group chat (bot/services/groups)
    "group_post": "a post in the cohort's group",
    "group_action": "a change the bot makes in the cohort's group (a join, a removal, a mute)",
    "group_invite": "a participant's join link for the cohort's group",
    "group_flag_notice": "a note to the facilitators about a flagged group message",
}


@dataclass(frozen=True)
class Upcoming:
    due_at: datetime
    what: str


def next_local_time(now: datetime, hhmm: str, timezone: str) -> datetime:
    """The next moment after `now` when a wall clock in `timezone` shows `hhmm`, in UTC."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    hour, minute = (int(part) for part in hhmm.split(":"))
    for days in range(0, 3):
        day = (local + timedelta(days=days)).date()
        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if candidate > local:
            return candidate.astimezone(now.tzinfo)
    raise AssertionError("unreachable: a time of day recurs within two days")


def describe_kind(kind: str) -> str:
    if kind in KIND_LABELS:  # first: a support person's check-in is not a participant's
        return KIND_LABELS[kind]
    if any(marker in kind for marker in CHECKIN_KIND_MARKERS):
        return "a check-in"
    return kind.replace("_", " ")


class BotClock:
    """The sandbox's control of the shared clock: read it, and move it forward step by step."""

    def __init__(self, path: Path, sessionmaker: async_sessionmaker[AsyncSession],
                 run_due: Callable[[], Awaitable[object]]) -> None:
        self.path = path
        self.clock = OffsetFileClock(path)
        self._sessionmaker = sessionmaker
        self._run_due = run_due  # one scheduler pass: send what is due now
        self._lock = asyncio.Lock()

    def now(self) -> datetime:
        return self.clock.now()

    def offset_seconds(self) -> float:
        return self.now().timestamp() - time.time()

    def _set(self, when: datetime) -> None:
        OffsetFileClock.write_offset(self.path, when.timestamp() - time.time())

    async def next_due(self, after: datetime) -> Upcoming | None:
        """The first scheduled row still waiting to go out."""
        async with self._sessionmaker() as session:
            row = await session.scalar(
                select(ScheduledAction)
                .where(ScheduledAction.status == ActionStatus.PENDING, ScheduledAction.due_at > after)
                .order_by(ScheduledAction.due_at).limit(1))
        return Upcoming(row.due_at, describe_kind(row.kind)) if row else None

    async def next_checkin(self, after: datetime) -> Upcoming | None:
        """The next daily check-in of any active participant: a scheduled check-in row if the
        scheduling engine wrote one, else the next time a participant's check-in time comes round."""
        async with self._sessionmaker() as session:
            rows = (await session.scalars(
                select(ScheduledAction)
                .where(ScheduledAction.status == ActionStatus.PENDING, ScheduledAction.due_at > after)
                .order_by(ScheduledAction.due_at).limit(200))).all()
            people = (await session.scalars(
                select(Participant).where(Participant.status == ParticipantStatus.ACTIVE))).all()
        planned = [r for r in rows if describe_kind(r.kind) == "a check-in"]
        # The planner's row is the truth (it adds jitter and honours quiet hours); the participant's
        # check-in time is only a guess for someone the planner has not planned yet.
        covered = {r.participant_id for r in planned}
        times = [r.due_at for r in planned]
        times += [next_local_time(after, p.checkin_time, p.timezone) for p in people if p.id not in covered]
        return Upcoming(min(times), "a check-in") if times else None

    async def advance_to(self, target: datetime) -> int:
        """Walk the clock to `target`, sending what falls due on the way. Returns the steps taken."""
        async with self._lock:
            steps = 0
            while steps < MAX_STEPS:
                now = self.now()
                if now >= target:
                    break
                stop = min(target, now + STEP)
                upcoming = await self.next_due(now)
                if upcoming is not None and upcoming.due_at < stop:
                    stop = upcoming.due_at + timedelta(seconds=1)
                self._set(stop)
                steps += 1
                try:
                    await self._run_due()
                except Exception:
                    # The bot's own tick retries; a failed pass must not stop the clock mid-way.
                    log.exception("scheduler pass after moving the clock failed")
            return steps

    async def advance(self, **delta: float) -> int:
        return await self.advance_to(self.now() + timedelta(**delta))
