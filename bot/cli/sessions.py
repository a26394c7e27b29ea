"""`iopbot sessions …`: import, list, cancel and move program sessions; manage participant groups.

Nothing here imports aiogram, so the commands start in about a second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.cli.base import settings_from, with_session
from bot.clock import clock_from_environment


def _run(args: argparse.Namespace, work: Callable[[Any, Any, datetime], Awaitable[int]]) -> int:
    settings = settings_from(args)
    now = clock_from_environment().now()

    async def in_session(session: Any) -> int:
        code = await work(session, settings, now)
        if code != 0:
            await session.rollback()  # nothing half-done
        return code

    return int(asyncio.run(with_session(settings, in_session)))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_import(args: argparse.Namespace) -> int:
    from bot.services.calendar.apply import import_calendar
    from bot.services.calendar.occurrences import describe_local
    from bot.services.calendar.reading import parse_file

    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")

    async def work(session: Any, settings: Any, now: datetime) -> int:
        parsed = parse_file(path, default_facilitator=args.facilitator, default_group=args.group)
        report = await import_calendar(session, settings, parsed, now)
        if report is None:
            for problem in parsed.problems:
                print(problem.render(str(path)), file=sys.stderr)
            count = len(parsed.problems)
            print(f"{count} problem{'s' if count > 1 else ''} found. Nothing was imported; fix "
                  f"{'them' if count > 1 else 'it'} and run the import again.", file=sys.stderr)
            return 1
        verb = "Checked (dry run, nothing saved)" if args.dry_run else "Imported"
        print(f"{verb}: {len(parsed.specs)} session{'s' if len(parsed.specs) != 1 else ''} from {path.name} "
              f"({len(report.added)} new, {len(report.updated)} updated, {len(report.unchanged)} unchanged"
              f"{f', {len(report.kept_cancelled)} cancelled' if report.kept_cancelled else ''}).")
        for ps in report.added + report.updated:
            print(f"  session {ps.id}: {ps.title} – {describe_local(ps.first_start, ps.timezone)}"
                  f"{' – ' + ps.rrule if ps.rrule else ''}")
        for ps in report.kept_cancelled:
            print(f"  session {ps.id}: {ps.title} is cancelled and stays cancelled")
        for name in report.new_groups:
            print(f"  new group {name!r}")
        for name in report.empty_groups:
            print(f"  note: group {name!r} has no members yet; add them with "
                  f"`iopbot sessions group add {name!r} ALIAS...`")
        if not args.dry_run:
            print(f"  reminders planned: {report.reminders_planned}")
        if args.dry_run:
            await session.rollback()
        return 0

    return _run(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db.calendar_models import Attendance, AttendanceStatus
    from bot.db.models import Participant
    from bot.services.calendar import occurrences as cal
    from bot.services.calendar.occurrences import describe_local

    async def work(session: Any, settings: Any, now: datetime) -> int:
        occs = await cal.upcoming(session, now, now + timedelta(days=args.days), include_cancelled=True)
        if not occs:
            print(f"No sessions in the next {args.days} days. Import some with `iopbot sessions import FILE`.")
            return 0
        who = await cal.audience(session, {o.session_id for o in occs})
        absent: dict[int, list[str]] = {}
        for occ_id, alias in (await session.execute(
            select(Attendance.occurrence_id, Participant.alias).join(Participant)
            .where(Attendance.occurrence_id.in_([o.id for o in occs]),
                   Attendance.status == AttendanceStatus.CANT_ATTEND)
        )).all():
            absent.setdefault(occ_id, []).append(alias)
        print(f"{'session':>7}  {'when (host time)':<27} {'kind':<10} {'title':<28} {'for':<22} facilitator")
        for occ in occs:
            ps = occ.session
            audience = ps.group.name if ps.group else f"{len(who.get(ps.id, ()))} named"
            line = (f"{ps.id:>7}  {describe_local(occ.start_at, ps.timezone):<27} {ps.kind:<10} "
                    f"{ps.title[:28]:<28} {audience[:22]:<22} {ps.facilitator.alias if ps.facilitator else '-'}")
            notes = []
            if occ.is_cancelled:
                notes.append("CANCELLED")
            if occ.moved_at is not None:
                notes.append(f"moved from {describe_local(occ.original_start, ps.timezone)}")
            if occ.id in absent:
                notes.append(f"can't attend: {', '.join(sorted(absent[occ.id]))}")
            print(line + (f"  [{'; '.join(notes)}]" if notes else ""))
        return 0

    return _run(args, work)


async def _one_occurrence(session: Any, session_id: int, day: str, now: datetime) -> Any:
    from bot.db.calendar_models import ProgramSession
    from bot.services.calendar import occurrences as cal
    from bot.services.calendar.occurrences import parse_local_date

    ps = await session.get(ProgramSession, session_id)
    if ps is None:
        raise LookupError(f"no session {session_id}; `iopbot sessions list` shows the ids")
    try:
        found = await cal.occurrence_on(session, ps, parse_local_date(day), now)
    except ValueError as exc:
        raise LookupError(str(exc)) from None
    if not found:
        raise LookupError(f"session {session_id} does not meet on {day} ({ps.timezone})")
    if len(found) > 1:
        raise LookupError(f"session {session_id} meets more than once on {day}; this is not supported")
    return found[0]


def cmd_cancel(args: argparse.Namespace) -> int:
    from bot.db.calendar_models import ProgramSession
    from bot.services.calendar import occurrences as cal
    from bot.services.calendar.occurrences import describe_local

    async def work(session: Any, settings: Any, now: datetime) -> int:
        try:
            if args.date:
                occ = await _one_occurrence(session, args.id, args.date, now)
                told = await cal.cancel_occurrence(session, occ, now)
                print(f"Cancelled session {args.id} on {describe_local(occ.start_at, occ.session.timezone)}; "
                      f"{told} participant{'s' if told != 1 else ''} will be told.")
                return 0
            ps = await session.get(ProgramSession, args.id)
            if ps is None:
                return _fail(f"no session {args.id}; `iopbot sessions list` shows the ids")
            told = await cal.cancel_series(session, settings, ps, now)
            print(f"Cancelled session {ps.id} ({ps.title}) from now on; {told} message"
                  f"{'s' if told != 1 else ''} to participants about the next days.")
            return 0
        except (LookupError, cal.CalendarError) as exc:
            return _fail(str(exc))

    return _run(args, work)


def cmd_move(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from bot.services.calendar import occurrences as cal
    from bot.services.calendar.occurrences import describe_local
    from bot.services.calendar.recurrence import local_to_utc

    async def work(session: Any, settings: Any, now: datetime) -> int:
        try:
            occ = await _one_occurrence(session, args.id, args.date, now)
            try:
                new_local = datetime.fromisoformat(args.to)
            except ValueError:
                return _fail(f"--to {args.to!r} is not a local date and time like 2026-03-04T16:00")
            if new_local.tzinfo is not None:
                return _fail("--to takes the local time of the session's zone, without an offset")
            if args.duration is not None and not 1 <= args.duration <= 480:
                return _fail("--duration must be 1 to 480 minutes")
            tz = occ.session.timezone
            old = occ.start_at
            told = await cal.move_occurrence(session, settings, occ, local_to_utc(new_local, ZoneInfo(tz)), now,
                                             duration_minutes=args.duration)
            print(f"Moved session {args.id} from {describe_local(old, tz)} to {describe_local(occ.start_at, tz)}; "
                  f"{told} participant{'s' if told != 1 else ''} will be told.")
            return 0
        except (LookupError, cal.CalendarError) as exc:
            return _fail(str(exc))

    return _run(args, work)


def cmd_group(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db.calendar_models import ParticipantGroup
    from bot.db.models import Participant
    from bot.services.calendar import occurrences as cal

    async def work(session: Any, settings: Any, now: datetime) -> int:
        if args.group_command == "list":
            groups = (await session.scalars(select(ParticipantGroup).order_by(ParticipantGroup.name))).all()
            if not groups:
                print("No groups yet. A session import creates them; add members with `iopbot sessions group add`.")
            for group in groups:
                members = await cal.group_members(session, group.id)
                print(f"{group.name}: {', '.join(m.alias for m in members) or '(no members)'}")
            return 0
        people = (await session.scalars(select(Participant).where(Participant.alias.in_(args.aliases)))).unique().all()
        unknown = sorted(set(args.aliases) - {p.alias for p in people})
        if unknown:
            return _fail(f"unknown participant{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; "
                         "nothing was changed")
        if args.group_command == "add":
            group = await cal.get_or_create_group(session, args.name, now)
        else:
            group = await cal.group_by_name(session, args.name)
            if group is None:
                return _fail(f"no group {args.name!r}; `iopbot sessions group list` shows them")
        changed = await cal.set_membership(session, settings, group, people, now, member=args.group_command == "add")
        members = await cal.group_members(session, group.id)
        print(f"{args.name}: {changed} changed; members now: {', '.join(m.alias for m in members) or '(none)'}")
        return 0

    return _run(args, work)


def register(sub: Any, add: Any) -> None:
    sessions = sub.add_parser("sessions", help="the program's session calendar").add_subparsers(
        dest="sessions_command", required=True)
    imp = add("import", cmd_import, "import sessions from a .csv or .ics file (all or nothing)", sessions)
    imp.add_argument("file", help="a .csv (see the columns in `iopbot sessions import --help`) or .ics file")
    imp.add_argument("--dry-run", action="store_true", help="check the file and show what would change")
    imp.add_argument("--facilitator", help="staff alias for events that do not name one")
    imp.add_argument("--group", help="group for events that do not name one")
    imp.formatter_class = argparse.RawDescriptionHelpFormatter
    imp.epilog = """\
CSV: a header row, then one session per row. Columns:
  title,kind,start,duration_minutes,timezone,video_link,facilitator,group,rrule
  optional: participants (aliases, for individual/family sessions), uid (your id for the row)
  Evening,group,2026-03-03T15:00,90,America/Chicago,https://zoom.us/j/1,dr-lee,Tue-Thu,"FREQ=WEEKLY;BYDAY=TU,TH"
iCalendar: one VEVENT per session: DTSTART;TZID=..., DTEND or DURATION, RRULE (weekly), EXDATE,
  SUMMARY, URL (or LOCATION) for the link, X-IOPBOT-KIND or CATEGORIES (group|individual|family),
  X-IOPBOT-GROUP, X-IOPBOT-PARTICIPANTS, X-IOPBOT-FACILITATOR or ORGANIZER;CN=<staff alias>.
  A VEVENT with RECURRENCE-ID moves or (STATUS:CANCELLED) cancels one date of its series.
Participants never see the title: reminders say "Your group session starts at 3:00 PM".
"""
    lst = add("list", cmd_list, "print upcoming session occurrences", sessions)
    lst.add_argument("--days", type=int, default=7, help="how many days ahead (default 7)")
    cancel = add("cancel", cmd_cancel, "cancel a session (the whole series, or one date)", sessions)
    cancel.add_argument("id", type=int, help="session id from `iopbot sessions list`")
    cancel.add_argument("--date", help="only the occurrence on this local date, e.g. 2026-03-03")
    move = add("move", cmd_move, "move one occurrence to another time", sessions)
    move.add_argument("id", type=int, help="session id from `iopbot sessions list`")
    move.add_argument("--date", required=True, help="the local date of the occurrence to move")
    move.add_argument("--to", required=True, help="new local start in the session's zone, e.g. 2026-03-04T16:00")
    move.add_argument("--duration", type=int, help="new length in minutes (default: unchanged)")
    group = sessions.add_parser("group", help="participant groups").add_subparsers(dest="group_command", required=True)
    for name, help_text in (("add", "add participants to a group (created if new)"),
                            ("remove", "remove participants from a group")):
        p = add(name, cmd_group, help_text, group)
        p.add_argument("name", help="group name")
        p.add_argument("aliases", nargs="+", help="participant aliases")
    add("list", cmd_group, "list groups and their members", group)
