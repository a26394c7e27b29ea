"""What a calendar import describes, whichever reader made it: the sessions a file lists
(`SessionSpec`, with the one-date moves and cancellations of an iCalendar series), every problem
found with its line (`Problem`, shown as file:line), and the field checks both readers share.

A `Parsed` carries the problems of every line, not only the first, so the operator fixes the file
in one pass; apply.py imports nothing while it has any.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.db.calendar_models import SessionKind
from bot.services.calendar.recurrence import check_first_start, local_to_utc, parse_rrule

KINDS = tuple(k.value for k in SessionKind)
MAX_DURATION = 8 * 60

# Outlook writes Windows zone names in TZID; the common ones, mapped to IANA.
WINDOWS_ZONES = {
    "Eastern Standard Time": "America/New_York", "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver", "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles", "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu", "Atlantic Standard Time": "America/Halifax",
    "GMT Standard Time": "Europe/London", "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris", "AUS Eastern Standard Time": "Australia/Sydney",
    "India Standard Time": "Asia/Kolkata", "UTC": "UTC",
}


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def render(self, filename: str) -> str:
        return f"{filename}:{self.line}: {self.message}"


@dataclass
class OccurrenceChange:
    """From an iCalendar RECURRENCE-ID event: one occurrence moved or cancelled."""

    line: int
    original_start: datetime  # UTC
    new_start: datetime | None  # UTC
    duration_minutes: int | None
    cancelled: bool


@dataclass
class SessionSpec:
    line: int
    uid: str
    title: str
    kind: str
    start_local: datetime  # naive wall time in `timezone`
    timezone: str
    duration_minutes: int
    video_link: str
    facilitator: str
    group: str | None
    participants: tuple[str, ...]
    rrule: str | None
    exdates: list[str] = field(default_factory=list)  # local "YYYY-MM-DDTHH:MM"
    changes: list[OccurrenceChange] = field(default_factory=list)

    @property
    def first_start(self) -> datetime:
        return local_to_utc(self.start_local, ZoneInfo(self.timezone))


@dataclass
class Parsed:
    specs: list[SessionSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (line, alias) of every facilitator and participant named, also on rows with other problems,
    # so that an unknown name is reported with them.
    facilitators: list[tuple[int, str]] = field(default_factory=list)
    participants: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.problems.append(Problem(line, message))


# --- field checks both readers share ----------------------------------------------------------------------

def check_timezone(name: str) -> str:
    name = WINDOWS_ZONES.get(name.strip(), name.strip())
    if not name:
        raise ValueError("time zone is empty; give an IANA name like America/Chicago")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name like America/Chicago") from None
    return name


def check_link(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if not url:
        raise ValueError("the video link is empty; give the https:// link participants join with")
    if parts.scheme != "https" or not parts.netloc or "." not in parts.netloc or re.search(r"[\s\"<>]", url):
        raise ValueError(f"video link {url!r} is not a valid https:// URL")
    return url


def check_kind(kind: str) -> str:
    value = kind.strip().lower()
    if value not in KINDS:
        raise ValueError(f"kind {kind.strip()!r} is not one of: {', '.join(KINDS)}")
    return value


def split_aliases(text: str) -> tuple[str, ...]:
    return tuple(a for a in re.split(r"[\s;,]+", text.strip()) if a)


def check_rule(text: str, start_local: datetime, tz: str) -> str:
    rule = parse_rrule(text)
    check_first_start(rule, start_local, ZoneInfo(tz))
    return rule.text


def derived_uid(*parts: object) -> str:
    return "csv:" + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]
