"""`iopbot sessions import`: the session calendar from CSV or iCalendar (.ics).

Everything is checked first and every problem is reported with its line number; if there is any,
nothing is imported. Importing the same file again changes nothing; a session with the same uid
(the iCalendar UID, or the CSV `uid` column) is updated in place.

CSV columns (header row required, any order; `participants` and `uid` are optional):
  title             for staff only; participants never see it
  kind              group | individual | family
  start             the first session, local time in `timezone`: 2026-03-03T15:00 or 2026-03-03 15:00
  duration_minutes  e.g. 90
  timezone          the host's IANA zone, e.g. America/Chicago
  video_link        https://...
  facilitator       staff alias (as enrolled with `iopbot invite staff`)
  group             participant group name (created if new; add members with `iopbot sessions group add`)
  rrule             weekly rule, e.g. FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20260630 (empty: one session)
  participants      aliases separated by spaces or ';', for individual and family sessions
  uid               your own stable id for the row, so a re-import can change its time

iCalendar: each VEVENT is a session. DTSTART;TZID=... (or X-WR-TIMEZONE), DTEND or DURATION,
RRULE (weekly), EXDATE, SUMMARY, URL / X-GOOGLE-CONFERENCE / LOCATION for the link, kind from
X-IOPBOT-KIND or CATEGORIES, X-IOPBOT-GROUP, X-IOPBOT-PARTICIPANTS, facilitator from
X-IOPBOT-FACILITATOR or ORGANIZER;CN=. A VEVENT with RECURRENCE-ID moves or (STATUS:CANCELLED)
cancels one occurrence of its series.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.calendar_models import (
    Attendance,
    ProgramSession,
    SessionAttendee,
    SessionKind,
    SessionOccurrence,
)
from bot.db.models import Participant, Staff
from bot.services.calendar import occurrences as cal
from bot.services.calendar.recurrence import RRuleError, check_first_start, local_to_utc, parse_rrule

CSV_REQUIRED = ("title", "kind", "start", "duration_minutes", "timezone", "video_link", "facilitator", "group", "rrule")
CSV_OPTIONAL = ("participants", "uid")
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


# --- shared field checks ----------------------------------------------------------------------

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


def _aliases(text: str) -> tuple[str, ...]:
    return tuple(a for a in re.split(r"[\s;,]+", text.strip()) if a)


def _check_rule(text: str, start_local: datetime, tz: str) -> str:
    rule = parse_rrule(text)
    check_first_start(rule, start_local, ZoneInfo(tz))
    return rule.text


def _derived_uid(*parts: object) -> str:
    return "csv:" + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


# --- CSV ----------------------------------------------------------------------------------------

def parse_csv(text: str, *, default_facilitator: str | None = None, default_group: str | None = None) -> Parsed:
    out = Parsed()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        out.add(1, "the file is empty; the first line must name the columns: " + ",".join(CSV_REQUIRED))
        return out
    columns = [h.strip().lower() for h in header]
    missing = [c for c in CSV_REQUIRED if c not in columns]
    optional_missing = {"facilitator"} if default_facilitator else set()
    optional_missing |= {"group"} if default_group is not None else set()
    missing = [c for c in missing if c not in optional_missing | {"rrule"}]
    if missing:
        out.add(1, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                   f"the header needs: {','.join(CSV_REQUIRED)}")
    unknown = [c for c in columns if c and c not in CSV_REQUIRED + CSV_OPTIONAL]
    if unknown:
        out.add(1, f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                   f"known columns: {', '.join(CSV_REQUIRED + CSV_OPTIONAL)}")
    if len(set(columns)) != len(columns):
        out.add(1, "a column is named twice")
    seen_uids: dict[str, int] = {}
    line = reader.line_num
    for values in reader:
        first_line, line = line + 1, reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(columns):
            values = _rejoin_byday(values)
        if len(values) != len(columns):
            hint = (' Put the rrule in double quotes: "FREQ=WEEKLY;BYDAY=TU,TH".'
                    if any("BYDAY=" in v.upper() for v in values) else "")
            out.add(first_line, f"{len(values)} values but the header has {len(columns)} columns "
                                f"(a missing or extra comma? quote values that contain commas).{hint}")
            continue
        row = dict(zip(columns, values, strict=True))
        spec = _csv_row(out, first_line, row, missing, default_facilitator, default_group)
        if spec is None:
            continue
        if spec.uid in seen_uids:
            out.add(first_line, f"the same session as line {seen_uids[spec.uid]} (same uid)")
            continue
        seen_uids[spec.uid] = first_line
        out.specs.append(spec)
    if not out.specs and not out.problems:
        out.add(1, "no sessions in the file: add one row per session under the header")
    return out


_WEEKDAY_PIECE = re.compile(r"^(MO|TU|WE|TH|FR|SA|SU)(;.*)?$", re.IGNORECASE)


def _rejoin_byday(values: list[str]) -> list[str]:
    """`FREQ=WEEKLY;BYDAY=TU,TH` written without quotes splits into two CSV values; put it back."""
    joined: list[str] = []
    for value in values:
        if joined and "BYDAY=" in joined[-1].upper() and ";" not in joined[-1].upper().split("BYDAY=")[-1] \
                and _WEEKDAY_PIECE.match(value.strip()):
            joined[-1] = f"{joined[-1]},{value.strip()}"
        else:
            joined.append(value)
    return joined


def _csv_row(out: Parsed, line: int, row: dict[str, str], missing: list[str],
             default_facilitator: str | None, default_group: str | None) -> SessionSpec | None:
    errors: list[str] = []

    def get(name: str) -> str:
        return row.get(name, "").strip()

    def attempt(check, *args):  # type: ignore[no-untyped-def]
        try:
            return check(*args)
        except ValueError as exc:
            errors.append(str(exc))
            return None

    title = get("title")
    if "title" not in missing and not title:
        errors.append("title is empty")
    kind = attempt(check_kind, get("kind")) if "kind" not in missing else None
    tz = attempt(check_timezone, get("timezone")) if "timezone" not in missing else None
    start_local = None
    if "start" not in missing:
        start_local = attempt(_local_datetime, get("start"))
    duration = attempt(_duration, get("duration_minutes")) if "duration_minutes" not in missing else None
    link = attempt(check_link, get("video_link")) if "video_link" not in missing else None
    facilitator = get("facilitator") or (default_facilitator or "")
    if "facilitator" not in missing and not facilitator:
        errors.append("facilitator is empty; give the staff alias of who runs the session")
    group = get("group") or default_group or None
    participants = _aliases(get("participants"))
    if facilitator:
        out.facilitators.append((line, facilitator))
    out.participants.extend((line, alias) for alias in participants)
    if kind == SessionKind.GROUP and not group and "group" not in missing:
        errors.append("a group session needs a group")
    if kind in (SessionKind.INDIVIDUAL, SessionKind.FAMILY) and not group and not participants:
        errors.append(f"{'an individual' if kind == SessionKind.INDIVIDUAL else 'a family'} session "
                      "needs participants (aliases) or a group")
    rrule = get("rrule") or None
    if rrule and start_local is not None and tz is not None:
        try:
            rrule = _check_rule(rrule, start_local, tz)
        except RRuleError as exc:
            errors.append(f"rrule: {exc}")
    if errors:
        for message in errors:
            out.add(line, message)
        return None
    if missing or None in (kind, tz, start_local, duration, link):
        return None
    assert kind and tz and start_local and duration and link
    uid = get("uid") or _derived_uid(title, kind, start_local.isoformat(), tz, group, participants, rrule)
    return SessionSpec(line=line, uid=uid, title=title, kind=kind, start_local=start_local, timezone=tz,
                       duration_minutes=duration, video_link=link, facilitator=facilitator, group=group,
                       participants=participants, rrule=rrule)


def _local_datetime(value: str) -> datetime:
    if not value:
        raise ValueError("start is empty; give the first session's local time like 2026-03-03T15:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"start {value!r} is not a date and time like 2026-03-03T15:00") from None
    if parsed.tzinfo is not None:
        raise ValueError(f"start {value!r} has a UTC offset; give the local time and put the zone in timezone")
    return parsed.replace(second=0, microsecond=0)


def _duration(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DURATION:
        raise ValueError(f"duration_minutes {value!r} must be a whole number of minutes from 1 to {MAX_DURATION}")
    return int(value)


# --- iCalendar ----------------------------------------------------------------------------------

@dataclass
class _Prop:
    name: str
    params: dict[str, str]
    value: str
    line: int


def _unfold(text: str) -> list[tuple[int, str]]:
    """Logical lines with the number of their first physical line (RFC 5545 3.1 folding)."""
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] = (lines[-1][0], lines[-1][1] + raw[1:])
        elif raw.strip():
            lines.append((number, raw))
    return lines


def _content_line(number: int, text: str) -> _Prop:
    """NAME;PARAM=VALUE;PARAM="quoted:value":VALUE"""
    i, n = 0, len(text)
    while i < n and text[i] not in ";:":
        i += 1
    name = text[:i].strip().upper()
    params: dict[str, str] = {}
    while i < n and text[i] == ";":
        i += 1
        start = i
        while i < n and text[i] not in "=;:":
            i += 1
        key = text[start:i].strip().upper()
        value = ""
        if i < n and text[i] == "=":
            i += 1
            if i < n and text[i] == '"':
                end = text.find('"', i + 1)
                if end < 0:
                    raise ValueError("a quoted parameter is not closed")
                value, i = text[i + 1:end], end + 1
            else:
                start = i
                while i < n and text[i] not in ";:":
                    i += 1
                value = text[start:i]
        params[key] = value
    if i >= n or text[i] != ":" or not name:
        raise ValueError(f"not an iCalendar line (NAME:VALUE): {text[:60]!r}")
    return _Prop(name, params, text[i + 1:], number)


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _ics_datetime(prop: _Prop, calendar_zone: str | None) -> tuple[datetime, str | None]:
    """(naive local time, zone name) or (aware UTC, None) for a DATE-TIME value."""
    value = prop.value.strip()
    if prop.params.get("VALUE", "").upper() == "DATE" or re.fullmatch(r"\d{8}", value):
        raise ValueError(f"{prop.name} is a date without a time (an all-day event); a session needs a start time")
    try:
        if value.endswith("Z"):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), None
        local = datetime.strptime(value, "%Y%m%dT%H%M%S")
    except ValueError:
        raise ValueError(f"{prop.name} {value!r} is not an iCalendar date-time like 20260303T150000") from None
    tzid = prop.params.get("TZID") or calendar_zone
    if not tzid:
        raise ValueError(f"{prop.name} has no time zone: add TZID=America/Chicago (or X-WR-TIMEZONE to the calendar)")
    return local, check_timezone(tzid.strip().strip("/"))


_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _ics_duration(value: str) -> int:
    m = _DURATION.match(value.strip().upper())
    if not m or not any(m.groups()):
        raise ValueError(f"DURATION {value!r} is not like PT1H30M")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    total = ((weeks * 7 + days) * 24 + hours) * 60 + minutes + seconds // 60
    if not 1 <= total <= MAX_DURATION:
        raise ValueError(f"DURATION {value!r} must be between 1 minute and {MAX_DURATION // 60} hours")
    return total


def parse_ics(text: str, *, default_facilitator: str | None = None, default_group: str | None = None) -> Parsed:
    out = Parsed()
    events: list[tuple[int, dict[str, list[_Prop]]]] = []
    calendar_zone: str | None = None
    stack: list[str] = []
    current: dict[str, list[_Prop]] | None = None
    for number, raw in _unfold(text):
        try:
            prop = _content_line(number, raw)
        except ValueError as exc:
            out.add(number, str(exc))
            continue
        if prop.name == "BEGIN":
            stack.append(prop.value.strip().upper())
            if stack[-1] == "VEVENT":
                current = {}
                events.append((number, current))
            continue
        if prop.name == "END":
            if not stack or stack[-1] != prop.value.strip().upper():
                out.add(number, f"END:{prop.value.strip()} does not close "
                                f"{'BEGIN:' + stack[-1] if stack else 'anything'}")
            else:
                if stack.pop() == "VEVENT":
                    current = None
            continue
        if stack == ["VCALENDAR"] and prop.name == "X-WR-TIMEZONE":
            calendar_zone = prop.value.strip()
        elif current is not None and stack[-1] == "VEVENT":  # not inside a VALARM
            current.setdefault(prop.name, []).append(prop)
    if stack:
        out.add(len(text.splitlines()), f"BEGIN:{stack[-1]} is never closed with END:{stack[-1]}")
    if not events and not out.problems:
        out.add(1, "no VEVENT in the file: nothing to import")

    masters: dict[str, SessionSpec] = {}
    failed: set[str] = set()  # events already reported: their RECURRENCE-ID events say nothing more
    overrides: list[tuple[str, OccurrenceChange | None, int]] = []
    for line, props in events:
        uid = _one(props, "UID")
        if "RECURRENCE-ID" in props:
            change = _ics_override(out, line, props, calendar_zone)
            overrides.append((uid.value.strip() if uid else "", change, line))
            continue
        status = _one(props, "STATUS")
        if status is not None and status.value.strip().upper() == "CANCELLED":
            continue  # a cancelled event is not a session
        spec = _ics_event(out, line, props, calendar_zone, default_facilitator, default_group)
        if spec is None:
            failed.add(uid.value.strip() if uid else "")
            continue
        if spec.uid in masters:
            out.add(line, f"UID {spec.uid!r} is used by the event at line {masters[spec.uid].line} too")
            continue
        masters[spec.uid] = spec
    for owner, change, line in overrides:
        if change is None or owner in failed:
            continue
        if owner not in masters:
            out.add(line, f"this RECURRENCE-ID event belongs to UID {owner!r}, which is not in the file")
            continue
        masters[owner].changes.append(change)
    out.specs.extend(masters.values())
    return out


def _one(props: dict[str, list[_Prop]], name: str) -> _Prop | None:
    found = props.get(name)
    return found[0] if found else None


def _ics_event(out: Parsed, line: int, props: dict[str, list[_Prop]], calendar_zone: str | None,
               default_facilitator: str | None, default_group: str | None) -> SessionSpec | None:
    errors: list[Problem] = []

    def fail(where: _Prop | None, message: str) -> None:
        errors.append(Problem(where.line if where else line, message))

    summary = _one(props, "SUMMARY")
    title = _unescape(summary.value).strip() if summary is not None else ""
    if not title:
        fail(None, "the event has no SUMMARY (title)")
    start_local: datetime | None = None
    tz: str | None = None
    dtstart = _one(props, "DTSTART")
    if dtstart is None:
        fail(None, "the event has no DTSTART")
    else:
        try:
            when, tz = _ics_datetime(dtstart, calendar_zone)
            if tz is None:  # UTC: show it in the calendar's zone, or UTC
                tz = check_timezone(calendar_zone) if calendar_zone else "UTC"
                when = when.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
            start_local = when
        except ValueError as exc:
            fail(dtstart, str(exc))
    duration: int | None = None
    if (d := _one(props, "DURATION")) is not None:
        try:
            duration = _ics_duration(d.value)
        except ValueError as exc:
            fail(d, str(exc))
    elif (end := _one(props, "DTEND")) is not None:
        try:
            end_when, end_tz = _ics_datetime(end, calendar_zone)
            if start_local is not None and tz is not None:
                end_utc = end_when if end_tz is None else local_to_utc(end_when, ZoneInfo(end_tz))
                minutes = int((end_utc - local_to_utc(start_local, ZoneInfo(tz))).total_seconds() // 60)
                if not 1 <= minutes <= MAX_DURATION:
                    raise ValueError(f"DTEND must be after DTSTART and at most {MAX_DURATION // 60} hours later")
                duration = minutes
        except ValueError as exc:
            fail(end, str(exc))
    else:
        fail(None, "the event has neither DTEND nor DURATION")
    link_prop = _one(props, "URL") or _one(props, "X-GOOGLE-CONFERENCE")
    if link_prop is None:
        location = _one(props, "LOCATION")
        if location is not None and _unescape(location.value).strip().lower().startswith(("http://", "https://")):
            link_prop = location
    link: str | None = None
    if link_prop is None:
        fail(None, "the event has no video link: add URL:https://... (or a LOCATION that is the link)")
    else:
        try:
            link = check_link(_unescape(link_prop.value))
        except ValueError as exc:
            fail(link_prop, str(exc))
    group_prop = _one(props, "X-IOPBOT-GROUP")
    group = _unescape(group_prop.value).strip() if group_prop else (default_group or None)
    people_prop = _one(props, "X-IOPBOT-PARTICIPANTS")
    participants = _aliases(_unescape(people_prop.value)) if people_prop else ()
    kind: str | None = None
    kind_prop = _one(props, "X-IOPBOT-KIND")
    if kind_prop is not None:
        try:
            kind = check_kind(kind_prop.value)
        except ValueError as exc:
            fail(kind_prop, str(exc))
    else:
        for cat in props.get("CATEGORIES", []):
            named = [c.strip().lower() for c in _unescape(cat.value).split(",")]
            kind = next((c for c in named if c in KINDS), kind)
        kind = kind or (SessionKind.INDIVIDUAL if participants and not group else SessionKind.GROUP)
    if kind == SessionKind.GROUP and not group:
        fail(None, "a group session needs X-IOPBOT-GROUP:<group name> (or pass --group)")
    if kind in (SessionKind.INDIVIDUAL, SessionKind.FAMILY) and not group and not participants:
        fail(None, f"{'an individual' if kind == SessionKind.INDIVIDUAL else 'a family'} session needs "
                   "X-IOPBOT-PARTICIPANTS:<aliases> or X-IOPBOT-GROUP")
    facilitator = ""
    if (f := _one(props, "X-IOPBOT-FACILITATOR")) is not None:
        facilitator = _unescape(f.value).strip()
    elif (org := _one(props, "ORGANIZER")) is not None and org.params.get("CN"):
        facilitator = org.params["CN"].strip()
    facilitator = facilitator or (default_facilitator or "")
    if not facilitator:
        fail(None, "no facilitator: add X-IOPBOT-FACILITATOR:<staff alias> (or pass --facilitator)")
    else:
        out.facilitators.append((line, facilitator))
    out.participants.extend((line, alias) for alias in participants)
    rrule: str | None = None
    rules = props.get("RRULE", [])
    if len(rules) > 1:
        fail(rules[1], "more than one RRULE; a session has one weekly rule")
    elif rules:
        if start_local is not None and tz is not None:
            try:
                rrule = _check_rule(rules[0].value, start_local, tz)
            except RRuleError as exc:
                fail(rules[0], f"RRULE: {exc}")
        else:
            try:
                rrule = parse_rrule(rules[0].value).text
            except RRuleError as exc:
                fail(rules[0], f"RRULE: {exc}")
    if "RDATE" in props:
        fail(props["RDATE"][0], "RDATE is not supported; add the extra date as its own event")
    exdates: list[str] = []
    for ex in props.get("EXDATE", []):
        for value in ex.value.split(","):
            try:
                when, ex_tz = _ics_datetime(_Prop("EXDATE", ex.params, value, ex.line), calendar_zone)
                if tz is not None:
                    local = when.astimezone(ZoneInfo(tz)).replace(tzinfo=None) if ex_tz is None else (
                        local_to_utc(when, ZoneInfo(ex_tz)).astimezone(ZoneInfo(tz)).replace(tzinfo=None))
                    exdates.append(local.isoformat(timespec="minutes"))
            except ValueError as exc:
                fail(ex, str(exc))
    uid_prop = _one(props, "UID")
    if errors:
        out.problems.extend(errors)
        return None
    assert start_local is not None and tz and duration and link and kind
    uid = uid_prop.value.strip() if uid_prop and uid_prop.value.strip() else _derived_uid(
        title, kind, start_local.isoformat(), tz, group, participants, rrule)
    return SessionSpec(line=line, uid=uid[:255], title=title[:200], kind=kind, start_local=start_local, timezone=tz,
                       duration_minutes=duration, video_link=link, facilitator=facilitator, group=group,
                       participants=participants, rrule=rrule, exdates=exdates)


def _ics_override(out: Parsed, line: int, props: dict[str, list[_Prop]],
                  calendar_zone: str | None) -> OccurrenceChange | None:
    rid = props["RECURRENCE-ID"][0]
    try:
        when, tz = _ics_datetime(rid, calendar_zone)
        original = when if tz is None else local_to_utc(when, ZoneInfo(tz))
    except ValueError as exc:
        out.add(rid.line, str(exc))
        return None
    status = _one(props, "STATUS")
    if status is not None and status.value.strip().upper() == "CANCELLED":
        return OccurrenceChange(line, original, None, None, cancelled=True)
    new_start: datetime | None = None
    duration: int | None = None
    if (start := _one(props, "DTSTART")) is not None:
        try:
            when, tz = _ics_datetime(start, calendar_zone)
            new_start = when if tz is None else local_to_utc(when, ZoneInfo(tz))
        except ValueError as exc:
            out.add(start.line, str(exc))
            return None
    if (d := _one(props, "DURATION")) is not None:
        try:
            duration = _ics_duration(d.value)
        except ValueError as exc:
            out.add(d.line, str(exc))
            return None
    elif (end := _one(props, "DTEND")) is not None and new_start is not None:
        try:
            when, tz = _ics_datetime(end, calendar_zone)
            end_utc = when if tz is None else local_to_utc(when, ZoneInfo(tz))
            duration = int((end_utc - new_start).total_seconds() // 60)
        except ValueError as exc:
            out.add(end.line, str(exc))
            return None
    return OccurrenceChange(line, original, new_start, duration, cancelled=False)


def parse_file(path: Path, *, default_facilitator: str | None = None, default_group: str | None = None) -> Parsed:
    """Parse a .csv or .ics file (by its extension, or by its first line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return Parsed(problems=[Problem(1, f"not UTF-8 text ({exc.reason}); save the file as UTF-8")])
    is_ics = path.suffix.lower() in (".ics", ".ical", ".ifb") or text.lstrip("\ufeff").startswith("BEGIN:VCALENDAR")
    parse = parse_ics if is_ics else parse_csv
    return parse(text, default_facilitator=default_facilitator, default_group=default_group)


# --- checking against the database and importing -------------------------------------------------

@dataclass
class ImportReport:
    added: list[ProgramSession] = field(default_factory=list)
    updated: list[ProgramSession] = field(default_factory=list)
    unchanged: list[ProgramSession] = field(default_factory=list)
    kept_cancelled: list[ProgramSession] = field(default_factory=list)  # cancelled by an operator: left so
    new_groups: list[str] = field(default_factory=list)
    empty_groups: list[str] = field(default_factory=list)
    reminders_planned: int = 0


async def check_names(session: AsyncSession, parsed: Parsed) -> None:
    """Unknown facilitators and participants are problems of their line (every line that names one)."""
    staff = set((await session.scalars(select(Staff.alias).where(Staff.active.is_(True)))).all())
    wanted = {alias for _, alias in parsed.participants}
    people = set((await session.scalars(select(Participant.alias).where(Participant.alias.in_(wanted)))).all()) \
        if wanted else set()
    for line, alias in parsed.facilitators:
        if alias not in staff:
            parsed.add(line, f"unknown facilitator {alias!r}: enroll them with `iopbot invite staff` first, "
                             "or fix the alias")
    for line, alias in parsed.participants:
        if alias not in people:
            parsed.add(line, f"unknown participant {alias!r}: invite them first, or fix the alias")
    parsed.problems.sort(key=lambda p: p.line)


async def apply_import(session: AsyncSession, settings: Settings, parsed: Parsed, now: datetime) -> ImportReport:
    """Write the checked sessions (call only when `parsed.problems` is empty), then plan reminders.
    The caller commits once: all of it or nothing."""
    assert not parsed.problems
    report = ImportReport()
    staff = {s.alias: s for s in (await session.scalars(select(Staff))).all()}
    for spec in parsed.specs:
        group_id = None
        if spec.group:
            existed = await cal.group_by_name(session, spec.group)
            group = existed or await cal.get_or_create_group(session, spec.group, now)
            if existed is None and spec.group not in report.new_groups:
                report.new_groups.append(spec.group)
            group_id = group.id
            if not await cal.group_members(session, group.id) and spec.group not in report.empty_groups:
                report.empty_groups.append(spec.group)
        values = dict(title=spec.title, kind=spec.kind, first_start=spec.first_start, timezone=spec.timezone,
                      duration_minutes=spec.duration_minutes, rrule=spec.rrule, exdates=sorted(spec.exdates),
                      video_link=spec.video_link, facilitator_id=staff[spec.facilitator].id, group_id=group_id)
        ps = await session.scalar(select(ProgramSession).where(ProgramSession.uid == spec.uid))
        if ps is None:
            ps = ProgramSession(uid=spec.uid, created_at=now, updated_at=now, **values)
            session.add(ps)
            await session.flush()
            report.added.append(ps)
        elif ps.cancelled_at is not None:
            # Cancelled with `iopbot sessions cancel`: a file that still lists it does not bring it back.
            report.kept_cancelled.append(ps)
            continue
        else:
            timing = ("first_start", "timezone", "rrule", "exdates", "duration_minutes")
            changed = {k for k, v in values.items() if getattr(ps, k) != v}
            if changed:
                for k, v in values.items():
                    setattr(ps, k, v)
                ps.updated_at = now
                if changed & set(timing):
                    await _rule_changed(session, ps, now)
                report.updated.append(ps)
            else:
                report.unchanged.append(ps)
        await _set_attendees(session, ps, spec.participants)
        for change in spec.changes:
            await _apply_change(session, ps, change, now)
    await session.flush()
    result = await cal.plan_reminders(session, settings, now)
    report.reminders_planned = result.added + result.revived + result.retimed
    return report


async def import_calendar(session: AsyncSession, settings: Settings, parsed: Parsed,
                          now: datetime) -> ImportReport | None:
    """All or nothing: check the names, then import only if no line has a problem (else None, and
    `parsed.problems` lists them all, by line)."""
    await check_names(session, parsed)
    if parsed.problems:
        return None
    return await apply_import(session, settings, parsed, now)


async def _set_attendees(session: AsyncSession, ps: ProgramSession, aliases: tuple[str, ...]) -> None:
    ids = set((await session.scalars(select(Participant.id).where(Participant.alias.in_(aliases)))).all()) \
        if aliases else set()
    current = {a.participant_id: a for a in (await session.scalars(
        select(SessionAttendee).where(SessionAttendee.session_id == ps.id))).all()}
    for pid in ids - current.keys():
        session.add(SessionAttendee(session_id=ps.id, participant_id=pid))
    for pid in current.keys() - ids:
        await session.delete(current[pid])


async def _rule_changed(session: AsyncSession, ps: ProgramSession, now: datetime) -> None:
    """The series' timing changed: future occurrences the new rule no longer gives, that nobody
    answered and nobody moved, are removed (their reminders cancelled); the planner adds the new ones."""
    future = (await session.scalars(select(SessionOccurrence).where(
        SessionOccurrence.session_id == ps.id, SessionOccurrence.original_start > now))).unique().all()
    if not future:
        return
    last = max(o.original_start for o in future)
    keep = set(cal.starts_between(ps, now, last + timedelta(seconds=1)))
    answered = set((await session.scalars(select(Attendance.occurrence_id).where(
        Attendance.occurrence_id.in_([o.id for o in future])))).all())
    stale = [o for o in future if o.original_start not in keep and o.moved_at is None and o.id not in answered]
    await cal.cancel_reminders(session, [o.id for o in stale], "session time changed by import")
    if stale:
        await session.execute(delete(SessionOccurrence).where(SessionOccurrence.id.in_([o.id for o in stale])))
    for o in future:
        if o not in stale and o.moved_at is None:
            o.duration_minutes = ps.duration_minutes
            if o.original_start not in keep and o.cancelled_at is None:
                o.cancelled_at = now  # answered by someone: keep the row, as cancelled


async def _apply_change(session: AsyncSession, ps: ProgramSession, change: OccurrenceChange, now: datetime) -> None:
    insert_values = dict(session_id=ps.id, original_start=change.original_start, start_at=change.original_start,
                         duration_minutes=ps.duration_minutes, created_at=now)
    occ = await session.scalar(select(SessionOccurrence).where(
        SessionOccurrence.session_id == ps.id, SessionOccurrence.original_start == change.original_start))
    if occ is None:
        occ = SessionOccurrence(**insert_values)
        session.add(occ)
    if change.cancelled:
        occ.cancelled_at = occ.cancelled_at or now
    else:
        if change.new_start is not None and change.new_start != occ.start_at:
            occ.start_at, occ.moved_at = change.new_start, now
        if change.duration_minutes:
            occ.duration_minutes = change.duration_minutes
    await session.flush()


def describe_local(when: datetime, tz: str) -> str:
    """A time for an operator's terminal: 'Tue 2026-03-03 15:00 CST'."""
    local = when.astimezone(ZoneInfo(tz))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def parse_local_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date like 2026-03-03") from None
