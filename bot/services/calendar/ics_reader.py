"""Reading a session calendar from iCalendar (.ics), by hand: only what session calendars use.

Each VEVENT is a session. DTSTART;TZID=... (or X-WR-TIMEZONE), DTEND or DURATION, RRULE (weekly),
EXDATE, SUMMARY, URL / X-GOOGLE-CONFERENCE / LOCATION for the link, kind from X-IOPBOT-KIND or
CATEGORIES, X-IOPBOT-GROUP, X-IOPBOT-PARTICIPANTS, facilitator from X-IOPBOT-FACILITATOR or
ORGANIZER;CN=. A VEVENT with RECURRENCE-ID moves or (STATUS:CANCELLED) cancels one occurrence of
its series. Every problem is reported with the line it starts on (after unfolding).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.db.calendar_models import SessionKind
from bot.services.calendar.recurrence import RRuleError, local_to_utc, parse_rrule
from bot.services.calendar.spec import (
    KINDS,
    MAX_DURATION,
    OccurrenceChange,
    Parsed,
    Problem,
    SessionSpec,
    check_kind,
    check_link,
    check_rule,
    check_timezone,
    derived_uid,
    split_aliases,
)


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
    participants = split_aliases(_unescape(people_prop.value)) if people_prop else ()
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
                rrule = check_rule(rules[0].value, start_local, tz)
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
    uid = uid_prop.value.strip() if uid_prop and uid_prop.value.strip() else derived_uid(
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
