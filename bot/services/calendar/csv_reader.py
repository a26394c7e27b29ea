"""Reading a session calendar from CSV: one row per session, every bad row named with its line.

Columns (header row required, any order; `participants` and `uid` are optional):
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
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from bot.db.calendar_models import SessionKind
from bot.services.calendar.recurrence import RRuleError
from bot.services.calendar.spec import (
    MAX_DURATION,
    Parsed,
    SessionSpec,
    check_kind,
    check_link,
    check_rule,
    check_timezone,
    derived_uid,
    split_aliases,
)

CSV_REQUIRED = ("title", "kind", "start", "duration_minutes", "timezone", "video_link", "facilitator", "group", "rrule")
CSV_OPTIONAL = ("participants", "uid")


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
    participants = split_aliases(get("participants"))
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
            rrule = check_rule(rrule, start_local, tz)
        except RRuleError as exc:
            errors.append(f"rrule: {exc}")
    if errors:
        for message in errors:
            out.add(line, message)
        return None
    if missing or None in (kind, tz, start_local, duration, link):
        return None
    assert kind and tz and start_local and duration and link
    uid = get("uid") or derived_uid(title, kind, start_local.isoformat(), tz, group, participants, rrule)
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
