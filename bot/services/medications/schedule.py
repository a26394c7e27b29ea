"""Pure rules of medication reminders: what people type and tap, and when each dose is due.

A reminder's times are local wall-clock times in the participant's zone; each day's dose is turned
into UTC for that date, so 08:00 stays 08:00 across a DST change (bot/services/local_time.py: a
time in the spring-forward gap moves forward by the gap, a time that happens twice is taken the
first time, once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.services.local_time import local_date, parse_hhmm, wall_time_to_utc
from bot.services.timeparse import parse_local_time

MAX_TIMES = 6  # times of day in one reminder
MAX_NAME = 60  # characters of a reminder's name
ALL_DAYS = frozenset(range(7))  # Monday 0 .. Sunday 6

# "08:00, 21:30", "8am and 9 pm", "8:00 y 21:30", one per line: each part is read by timeparse.
_SEPARATORS = re.compile(r"\s*(?:[,;/\n]|\band\b|\by\b|&)\s*", re.IGNORECASE)


def parse_times(text: str) -> list[str] | None:
    """The 'HH:MM' times in what was typed, sorted, without repeats; None if any part is not a
    time or there are none or more than MAX_TIMES."""
    parts = [p for p in _SEPARATORS.split(text or "") if p.strip()]
    times = []
    for part in parts:
        at = parse_local_time(part)
        if at is None:
            return None
        times.append(at)
    unique = sorted(set(times))
    return unique if 0 < len(unique) <= MAX_TIMES else None


def clean_name(text: str) -> str | None:
    """The name as it will be stored (spaces tidied); None when empty or longer than MAX_NAME."""
    name = " ".join((text or "").split())
    return name if 0 < len(name) <= MAX_NAME else None


def days_to_text(days: Iterable[int]) -> str:
    """Stored form of chosen weekdays: '' for every day, else '0,2,4'."""
    chosen = sorted(set(days))
    return "" if set(chosen) == ALL_DAYS or not chosen else ",".join(str(d) for d in chosen)


def days_from_text(value: str) -> frozenset[int]:
    if not value:
        return ALL_DAYS
    return frozenset(int(d) for d in value.split(",") if d.strip().isdigit() and 0 <= int(d) <= 6)


def times_from_text(value: str) -> list[str]:
    return [t for t in value.split(",") if t]


def reminder_key(reminder_id: int, day: date, at: str) -> str:
    """The unique key of one planned dose: any number of workers may plan it at once."""
    return f"med:{reminder_id}:{day.isoformat()}:{at.replace(':', '')}"


def snooze_key(dose_id: int, snooze: int) -> str:
    return f"med:snooze:{dose_id}:{snooze}"


@dataclass(frozen=True)
class PlannedDose:
    key: str
    day: date
    at: str  # local "HH:MM"
    due: datetime  # aware UTC


def planned_doses(reminder_id: int, times: Sequence[str], days: frozenset[int], timezone: str, now: datetime,
                  ahead_days: int) -> list[PlannedDose]:
    """The doses of one reminder from now to `ahead_days` local days ahead, in UTC, DST-correct.
    An unknown zone plans nothing (the participant's zone is checked when they choose it)."""
    try:
        zone = ZoneInfo(timezone)
    except (KeyError, ValueError):
        return []
    today = local_date(now, zone)
    doses = []
    for day in (today + timedelta(days=n) for n in range(ahead_days + 1)):
        if day.weekday() not in days:
            continue
        for at in times:
            due = wall_time_to_utc(day, parse_hhmm(at), zone)
            if due > now:
                doses.append(PlannedDose(reminder_key(reminder_id, day, at), day, at, due))
    return doses


def missed_run(statuses_newest_first: Sequence[str]) -> int:
    """How many of the latest answered-or-missed doses were missed in a row (taken or skipped ends
    the run: skipping is the participant's own answer, not silence)."""
    run = 0
    for status in statuses_newest_first:
        if status != "missed":
            break
        run += 1
    return run
