"""When a participant's daily message is due: their wall clock, their zone, their quiet hours.

Pure functions (no database, no "now" of their own), so every rule is testable on its own:

- A local time is turned into UTC in the participant's IANA zone, DST-correct. A time that does
  not exist on a spring-forward day (02:30 in New York) moves forward by the size of the gap
  (03:30), as PEP 495 reads it with fold=0; a time that happens twice on a fall-back day
  (01:30) is taken the first time, once, because there is one row per local date.
- Quiet hours may wrap midnight (22:00-08:00). A message due inside them is deferred to their
  end, or skipped for that day, per `[schedule] quiet_hours_policy`. start == end means none.
- A small per-participant jitter (always the same offset for one participant, never earlier than
  the chosen time) spreads a 9:00 wave over a few minutes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFER = "defer"
SKIP = "skip"


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def wall_time_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`day` at wall-clock `at` in `zone`, as aware UTC (gap: moved forward; overlap: the first)."""
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def in_quiet_hours(local: time, quiet_start: time, quiet_end: time) -> bool:
    """Whether a local wall time falls in quiet hours [start, end), which may wrap midnight."""
    if quiet_start == quiet_end:
        return False
    if quiet_start < quiet_end:
        return quiet_start <= local < quiet_end
    return local >= quiet_start or local < quiet_end


def quiet_hours_end(moment: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time) -> datetime:
    """The end of the quiet hours that `moment` falls in (call only when it is in them)."""
    local = moment.astimezone(zone)
    end_day = local.date()
    if quiet_start > quiet_end and local.time() >= quiet_start:
        end_day += timedelta(days=1)  # 23:30 in 22:00-08:00 ends at 08:00 the next day
    return wall_time_to_utc(end_day, quiet_end, zone)


@lru_cache(maxsize=262144)
def jitter_seconds(participant_id: int, jitter_minutes: float) -> int:
    """A stable offset in [0, jitter_minutes) for one participant: the same every day."""
    span = int(jitter_minutes * 60)
    if span <= 0:
        return 0
    digest = hashlib.sha256(f"iopbot-jitter:{participant_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % span


@dataclass(frozen=True)
class PlannedTime:
    """When a daily message was meant to go (`intended`) and when it will (`due`; None: skipped)."""

    intended: datetime
    due: datetime | None
    deferred: bool = False

    @property
    def skipped(self) -> bool:
        return self.due is None


@lru_cache(maxsize=65536)
def plan_daily(day: date, at: str, zone_name: str, quiet_start: str, quiet_end: str, policy: str,
               jitter: int) -> PlannedTime:
    """The daily message of local date `day` at local time `at` ("HH:MM") in `zone_name`.

    Cached: a program's participants share a few zones and times, so planning 100,000 of them
    costs little more than planning a few hundred.
    """
    zone = ZoneInfo(zone_name)
    intended = wall_time_to_utc(day, parse_hhmm(at), zone)
    due = intended + timedelta(seconds=jitter)
    qs, qe = parse_hhmm(quiet_start), parse_hhmm(quiet_end)
    if not in_quiet_hours(due.astimezone(zone).time(), qs, qe):
        return PlannedTime(intended, due)
    if policy == SKIP:
        return PlannedTime(intended, None)
    return PlannedTime(intended, quiet_hours_end(due, zone, qs, qe) + timedelta(seconds=jitter), deferred=True)


def now_in_quiet_hours(now: datetime, zone_name: str, quiet_start: str, quiet_end: str) -> bool:
    return in_quiet_hours(now.astimezone(ZoneInfo(zone_name)).time(), parse_hhmm(quiet_start),
                          parse_hhmm(quiet_end))
