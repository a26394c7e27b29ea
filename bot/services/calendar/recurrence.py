"""Weekly recurrence (iCalendar RRULE, RFC 5545) expanded on the host's wall clock.

Only what IOP calendars use: FREQ=WEEKLY with BYDAY, INTERVAL, COUNT, UNTIL and WKST. A rule
repeats the first session's local time in the host time zone, so a 3:00 PM Chicago group stays at
3:00 PM Chicago across daylight saving time (and moves in UTC). A local time that does not exist
on a spring-forward day moves forward by the gap; an ambiguous autumn time happens once (the first).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_SUPPORTED = {"FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL", "WKST"}
# Generous bound on how far a rule is followed, so a typo cannot make a planner spin.
_MAX_WEEKS = 52 * 20


class RRuleError(ValueError):
    """The rule cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class WeeklyRule:
    byday: tuple[int, ...] = ()  # 0 = Monday; empty means the weekday of the first session
    interval: int = 1
    count: int | None = None
    until: datetime | date | None = None  # aware UTC, a floating local datetime, or a local date
    wkst: int = 0
    text: str = ""


def _weekday(code: str, what: str) -> int:
    code = code.strip().upper()
    if code not in WEEKDAY_CODES:
        if code[:-2].lstrip("+-").isdigit():
            raise RRuleError(f"{what} {code!r}: numbered weekdays (like 1MO) are for monthly rules; "
                             "a weekly rule takes plain days like MO,WE")
        raise RRuleError(f"{what} {code!r} is not a weekday; use MO, TU, WE, TH, FR, SA or SU")
    return WEEKDAY_CODES.index(code)


def _until(value: str) -> datetime | date:
    value = value.strip().upper()
    try:
        if len(value) == 8:
            return datetime.strptime(value, "%Y%m%d").date()
        if value.endswith("Z"):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return datetime.strptime(value, "%Y%m%dT%H%M%S")
    except ValueError:
        raise RRuleError(f"UNTIL={value!r} is not a date like 20260630 or a UTC time like 20260630T235959Z") from None


def _positive(name: str, value: str, upper: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= upper:
        raise RRuleError(f"{name}={value!r} must be a whole number from 1 to {upper}")
    return int(value)


def parse_rrule(text: str) -> WeeklyRule:
    """Parse a weekly RRULE like `FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20260630`, or raise RRuleError."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body:
        raise RRuleError("the rule is empty")
    parts: dict[str, str] = {}
    for piece in body.split(";"):
        if not piece.strip():
            continue
        name, sep, value = piece.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise RRuleError(f"{piece.strip()!r} is not NAME=VALUE (parts are separated by ';')")
        if name in parts:
            raise RRuleError(f"{name} is given twice")
        if name not in _SUPPORTED:
            if name.startswith("BY") or name in ("BYSETPOS", "RSCALE", "SKIP"):
                raise RRuleError(f"{name} is not supported; a session rule is weekly on some days "
                                 "(FREQ=WEEKLY;BYDAY=MO,WE)")
            raise RRuleError(f"unknown rule part {name!r}")
        parts[name] = value.strip()
    freq = parts.get("FREQ", "").upper()
    if not freq:
        raise RRuleError("FREQ is missing; sessions repeat weekly: FREQ=WEEKLY;BYDAY=MO,WE")
    if freq != "WEEKLY":
        raise RRuleError(f"FREQ={freq} is not supported; sessions repeat weekly (FREQ=WEEKLY, with "
                         "INTERVAL=2 for every other week)")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RRuleError("give COUNT or UNTIL, not both")
    byday: tuple[int, ...] = ()
    if "BYDAY" in parts:
        days = [_weekday(code, "BYDAY") for code in parts["BYDAY"].split(",")]
        if len(set(days)) != len(days):
            raise RRuleError("BYDAY names a day twice")
        byday = tuple(sorted(days))
    return WeeklyRule(
        byday=byday,
        interval=_positive("INTERVAL", parts["INTERVAL"], 52) if "INTERVAL" in parts else 1,
        count=_positive("COUNT", parts["COUNT"], 1000) if "COUNT" in parts else None,
        until=_until(parts["UNTIL"]) if "UNTIL" in parts else None,
        wkst=_weekday(parts["WKST"], "WKST") if "WKST" in parts else 0,
        text=body,
    )


def local_to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """A wall time in `tz` as UTC. A time in a spring-forward gap moves forward by the gap
    (2:30 AM that does not exist becomes 3:30 AM); an ambiguous time is taken the first time."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _days_of_week(rule: WeeklyRule, first: date) -> list[int]:
    days = rule.byday or (first.weekday(),)
    # Order within a week follows WKST, which matters with INTERVAL > 1 and COUNT.
    return sorted(days, key=lambda d: (d - rule.wkst) % 7)


def check_first_start(rule: WeeklyRule, first_local: datetime, tz: ZoneInfo) -> None:
    """The first session must itself be one the rule gives (RFC 5545 leaves the other case undefined)."""
    first_local = first_local.replace(tzinfo=None)
    if rule.byday and first_local.weekday() not in rule.byday:
        days = ",".join(WEEKDAY_CODES[d] for d in rule.byday)
        raise RRuleError(f"the first session is on a {WEEKDAY_CODES[first_local.weekday()]} but the rule "
                         f"says BYDAY={days}; make the start the first session of the series")
    if not _within_until(rule, first_local, local_to_utc(first_local, tz)):
        raise RRuleError("UNTIL is before the first session: the rule gives no sessions")


def _within_until(rule: WeeklyRule, local: datetime, utc: datetime) -> bool:
    until = rule.until
    if until is None:
        return True
    if isinstance(until, datetime):
        if until.tzinfo is not None:
            return utc <= until
        return local.replace(tzinfo=None) <= until
    return local.date() <= until


def occurrences(rule: WeeklyRule | None, first_local: datetime, tz: ZoneInfo, *,
                exdates: frozenset[datetime] = frozenset()) -> Iterator[tuple[datetime, datetime]]:
    """Every occurrence as (local wall time, UTC), in order, for a first session at `first_local`
    (naive, wall time in `tz`). Without a rule there is one. Stops at COUNT or UNTIL, or never:
    callers stop iterating at the end of their window. `exdates` are skipped local wall times
    (they still count toward COUNT, as in iCalendar)."""
    first_local = first_local.replace(tzinfo=None)
    if rule is None:
        if first_local not in exdates:
            yield first_local, local_to_utc(first_local, tz)
        return
    clock: time = first_local.time()
    week_start = first_local.date() - timedelta(days=(first_local.weekday() - rule.wkst) % 7)
    days = _days_of_week(rule, first_local.date())
    produced = 0
    for week in range(0, _MAX_WEEKS, rule.interval):
        monday = week_start + timedelta(weeks=week)
        for day in days:
            local = datetime.combine(monday + timedelta(days=(day - rule.wkst) % 7), clock)
            if local < first_local:
                continue
            utc = local_to_utc(local, tz)
            if not _within_until(rule, local, utc):
                return
            produced += 1
            if local not in exdates:
                yield local, utc
            if rule.count is not None and produced >= rule.count:
                return


def occurrences_between(rule: WeeklyRule | None, first_local: datetime, tz: ZoneInfo, start: datetime,
                        end: datetime, *, exdates: frozenset[datetime] = frozenset()) -> list[datetime]:
    """UTC starts of the occurrences with start <= t < end (aware UTC bounds)."""
    found: list[datetime] = []
    for _, utc in occurrences(rule, first_local, tz, exdates=exdates):
        if utc >= end:
            break
        if utc >= start:
            found.append(utc)
    return found
