"""A support person's week: the line the participant chose to share, then their own check-in
("how are you doing?", 0-10 and an optional line), once a week at `[support] checkin_time` in their
time zone, on `[support] checkin_day` (by default the weekday they joined), from a week after they joined.

The update is a row planned ahead by `WeeklyPlanner` (keyed by the local date, so a restart neither
loses nor repeats one) and rendered when sent: it reads what is shared at that moment (nothing
after a revocation: the rows are cancelled then too). The check-in's row is added by the update's
sender once the update is done (sent, or nothing to share), due at once, so the question always
comes after the update and stays the last message, even when both are late (a bot that was down,
a slow tick): two rows due together are sent side by side, in no fixed order. A score at or below
`[support] low_score` tells the participant's clinician as a concern (no page); the optional line
passes the safety gate like any message (bot/services/support/safety.py).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS, SupportSettings
from bot.db.support_models import SupportCheckin, SupportPerson, SupportStatus
from bot.services.calendar.recurrence import local_to_utc
from bot.services.scheduling.rows import OneTransactionPlanner, enqueue
from bot.services.support.safety import tell_clinician
from bot.services.support.service import end_where_participant_left, person_key

log = logging.getLogger(__name__)

UPDATE_KIND = "support_update"  # the weekly line the participant shares
CHECKIN_KIND = "support_checkin"  # "how are you doing?"
SCORES = range(11)


def next_week_slot(person: SupportPerson, now: datetime, support: SupportSettings) -> datetime:
    """The next weekly time after `now` (`[support] checkin_day` and `checkin_time`, their time
    zone), never before a week after they joined."""
    tz = ZoneInfo(person.timezone)
    joined = person.consented_at or now
    at = datetime.strptime(support.checkin_time, "%H:%M").time()
    weekday = (joined.astimezone(tz).weekday() if support.checkin_day == "joined"
               else WEEKDAYS.index(support.checkin_day))
    base = max(now, joined + timedelta(days=6))
    day = base.astimezone(tz).date()
    while True:
        if day.weekday() == weekday:
            when = local_to_utc(datetime.combine(day, at), tz)
            if when > base:
                return when
        day += timedelta(days=1)


def local_day(person: SupportPerson, when: datetime) -> date:
    return when.astimezone(ZoneInfo(person.timezone)).date()


async def plan_week(session: AsyncSession, person: SupportPerson, now: datetime, support: SupportSettings) -> bool:
    """The person's next update row (idempotent; its sender adds the check-in). True when added."""
    when = next_week_slot(person, now, support)
    return await enqueue(session, kind=UPDATE_KIND, key=person_key(person.id, f"update:{local_day(person, when)}"),
                         due_at=when, payload={"support_person_id": person.id}, now=now)


async def follow_with_checkin(session: AsyncSession, person: SupportPerson, update_due: datetime,
                              now: datetime) -> bool:
    """The week's check-in, due now: called by the update's sender once the update is done, so the
    question comes after it (idempotent: one per week, keyed like the update)."""
    day = local_day(person, update_due)
    return await enqueue(session, kind=CHECKIN_KIND, key=person_key(person.id, f"checkin:{day}"), due_at=now,
                         payload={"support_person_id": person.id}, now=now)


class WeeklyPlanner(OneTransactionPlanner):
    """Plans every active support person's next week, from the tick (at most once a plan interval).
    First it ends the support of participants who left the program (/stop; a discharge ends it at
    once): their support persons are told plainly, and nothing of theirs is planned again."""

    what = "support persons' weeks"

    async def plan_in(self, session: AsyncSession, now: datetime) -> int:
        ended = await end_where_participant_left(session, now)
        if ended:
            log.info("support persons: %s ended (their participant left the program)", ended)
        people = (await session.scalars(select(SupportPerson).where(
            SupportPerson.status == SupportStatus.ACTIVE))).unique().all()
        return sum([await plan_week(session, person, now, self.ctx.settings.support) for person in people])


async def open_checkin(session: AsyncSession, person: SupportPerson, now: datetime) -> SupportCheckin:
    """This week's check-in row (one per local day; asked again, the same row)."""
    day = local_day(person, now)
    checkin = await session.scalar(select(SupportCheckin).where(
        SupportCheckin.support_person_id == person.id, SupportCheckin.local_date == day))
    if checkin is None:
        checkin = SupportCheckin(support_person_id=person.id, local_date=day, asked_at=now, level=0)
        session.add(checkin)
        await session.flush()
    return checkin


async def record_score(session: AsyncSession, person: SupportPerson, checkin: SupportCheckin, score: int,
                       now: datetime, *, low_score: int) -> None:
    """Their 0-10. One at or below `low_score` (`[support] low_score`) tells the participant's
    clinician (about the support person, no page)."""
    if score not in SCORES:
        raise ValueError(f"score {score} is not 0-10")
    first = checkin.score is None
    checkin.score, checkin.answered_at = score, now
    if first and score <= low_score:
        await tell_clinician(session, person, now, about=False, reason="low_score")


def record_note(checkin: SupportCheckin, text: str, level: int) -> None:
    """Their optional line (encrypted at rest), with the level the safety gate gave it."""
    checkin.note = text
    checkin.level = max(checkin.level or 0, level)
