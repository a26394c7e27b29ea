"""`iopbot participant discharge`, `iopbot participant track` and `iopbot staff deactivate`: people
come and go, and change tracks (bot/services/people.py, bot/services/learning/tracks.py; `iopbot invite
revoke` is with the invites, in bot/cli/invite.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from bot.cli.base import settings_from, with_session


def _context(settings: Any, session_maker: Any = None) -> Any:
    from bot.clock import clock_from_environment
    from bot.content.i18n import Texts
    from bot.context import AppContext

    return AppContext(settings=settings, clock=clock_from_environment(), texts=Texts.load(settings.content_dir),
                      sessionmaker=session_maker)


def cmd_discharge(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db.models import Participant
    from bot.services.people import PeopleError, discharge

    settings = settings_from(args)
    ctx = _context(settings)

    async def work(session: Any) -> tuple[str, int]:
        participant = await session.scalar(select(Participant).where(Participant.alias == args.alias))
        if participant is None:
            raise PeopleError(f"no participant with alias {args.alias!r}")
        now = ctx.clock.now()
        stopped = await discharge(session, participant, now, alumni=args.alumni)
        if args.alumni:  # their next check-ins (the planner costs seconds of imports: only when needed)
            from bot.services.checkins.planner import CheckinPlanner

            await CheckinPlanner(ctx).replan_participant(session, participant, now)
        return participant.status, stopped

    try:
        status, stopped = asyncio.run(with_session(settings, work))
    except PeopleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    every = settings.discharge.alumni_every_days
    print(f"{args.alias}: {status}. {stopped} scheduled message(s) cancelled; the goodbye with the crisis numbers "
          "goes out from the running bot; their clinician is told. The record is kept.")
    if args.alumni:
        print(f"Alumni check-in: every {every} day(s). `iopbot participant discharge {args.alias}` ends it.")
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db.models import Participant
    from bot.services.learning.tracks import NO_TRACK, TrackError, set_track
    from bot.services.people import OPERATOR, PeopleError

    settings = settings_from(args)
    ctx = _context(settings)

    async def work(session: Any) -> tuple[str | None, str | None]:
        participant = await session.scalar(select(Participant).where(Participant.alias == args.alias))
        if participant is None:
            raise PeopleError(f"no participant with alias {args.alias!r}")
        before = participant.track
        if args.track is None:
            return before, before
        return before, await set_track(session, ctx, participant, args.track, OPERATOR)

    try:
        before, after = asyncio.run(with_session(settings, work))
    except (PeopleError, TrackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tracks = settings.content.tracks
    if args.track is None:
        print(f"{args.alias}: track {before or NO_TRACK}"
              + (f" (the program's tracks: {', '.join(tracks)})" if tracks else " (this program has no tracks)"))
    elif before == after:
        print(f"{args.alias}: track {after or NO_TRACK} (unchanged)")
    else:
        print(f"{args.alias}: track {after or NO_TRACK} (was {before or NO_TRACK}); the daily read follows it "
              "from the next one, never repeating what they had")
    return 0


def cmd_deactivate(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.db.models import Staff
    from bot.services.people import PeopleError, deactivate_staff

    settings = settings_from(args)
    ctx = _context(settings)

    async def work(session: Any) -> Any:
        staff = await session.scalar(select(Staff).where(Staff.alias == args.alias))
        if staff is None:
            raise PeopleError(f"no staff member with alias {args.alias!r}")
        other = None
        if args.reassign_to:
            other = await session.scalar(select(Staff).where(Staff.alias == args.reassign_to))
            if other is None:
                raise PeopleError(f"no staff member with alias {args.reassign_to!r} for --reassign-to")
        return await deactivate_staff(session, ctx, staff, other)

    try:
        handover = asyncio.run(with_session(settings, work))
    except PeopleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.alias}: deactivated (never paged again; the record is kept).")
    if args.reassign_to:
        print(f"  {len(handover.participants)} participant(s) now with {args.reassign_to}"
              + (f": {', '.join(handover.participants)}" if handover.participants else ""))
        print(f"  {len(handover.alerts)} alert(s) without an outcome paged to {args.reassign_to}")
    if handover.invites_revoked:
        print(f"  {handover.invites_revoked} unused invite link(s) revoked")
    print("Run `iopbot doctor` to check that everyone is still covered.")
    return 0


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    participant = sub.add_parser("participant", help="participants: discharge, track").add_subparsers(
        dest="participant_command", required=True)
    discharge = add("discharge", cmd_discharge,
                    "end check-ins, reminders and the daily read; send a goodbye with the crisis numbers; "
                    "keep the record", participant)
    discharge.add_argument("alias")
    discharge.add_argument("--alumni", action="store_true",
                           help="keep a short check-in every [discharge] alumni_every_days (default 7)")
    track = add("track", cmd_track,
                "show or set a participant's track ([content] tracks), which picks their daily read", participant)
    track.add_argument("alias")
    track.add_argument("track", nargs="?", metavar="NAME",
                       help="one of [content] tracks, or none for every snippet (leave out to show the current one)")

    staff = sub.add_parser("staff", help="staff: deactivate").add_subparsers(dest="staff_command", required=True)
    deactivate = add("deactivate", cmd_deactivate,
                     "never page this person again (refused while they hold participants or open alerts, "
                     "unless --reassign-to)", staff)
    deactivate.add_argument("alias")
    deactivate.add_argument("--reassign-to", metavar="ALIAS",
                            help="hand their participants and open alerts to this staff member")
