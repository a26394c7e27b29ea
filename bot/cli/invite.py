"""`iopbot invite staff|participant|support` prints a single-use enrollment link; `iopbot invite revoke`
makes a person's unused links stop working (bot/services/enrollment.py, bot/services/people.py).

No aiogram unless the link needs the bot's username and the config does not name it: then one
getMe call asks Telegram."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.cli.base import settings_from, with_session
from bot.config import Settings


async def _bot_username(settings: Settings) -> str | None:
    if settings.telegram.bot_username:
        return settings.telegram.bot_username
    if not settings.secrets.bot_token:
        return None
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram.api_base.rstrip("/")), timeout=10)
    bot = Bot(settings.secrets.bot_token, session=session)
    try:
        return (await bot.get_me()).username
    except Exception:
        return None
    finally:
        await session.close()


def cmd_invite(args: argparse.Namespace) -> int:
    from bot.clock import clock_from_environment
    from bot.services import enrollment

    settings = settings_from(args)
    now = clock_from_environment().now()

    track: str | None = None
    if args.who == "participant" and args.track is not None:
        from bot.services.learning.tracks import TrackError, check_track

        try:  # before anything is written: a wrong name issues no link
            track = check_track(settings, args.track)
        except TrackError as exc:
            print(f"error: --track: {exc}", file=sys.stderr)
            return 2

    async def work(session: Any) -> enrollment.IssuedInvite:
        if args.who == "staff":
            return await enrollment.invite_staff(session, now, settings, args.alias, args.role, on_call=args.on_call)
        issued = await enrollment.invite_participant(
            session, now, settings, args.alias, args.therapist, backup_alias=args.backup, timezone=args.timezone,
            language=args.language,
        )
        if args.track is not None:  # the daily read goes by it from their first day
            from sqlalchemy import select

            from bot.db.models import Participant

            participant = await session.scalar(select(Participant).where(Participant.alias == args.alias.strip()))
            participant.track = track
        return issued

    try:
        issued = asyncio.run(with_session(settings, work))
    except enrollment.EnrollmentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    username = asyncio.run(_bot_username(settings))
    if username:
        print(f"link:    {issued.link(username)}")
    else:
        print("link:    (set [telegram] bot_username or BOT_TOKEN to print the link)")
    print(f"token:   {issued.token}")
    print(f"expires: {issued.expires_at:%Y-%m-%d %H:%M} UTC "
          f"(single use; earlier links for {args.alias} no longer work)")
    return 0


def cmd_invite_support(args: argparse.Namespace) -> int:
    """`iopbot invite support --participant ALIAS [--name NAME] [--share attendance,checkins]`: staff set
    up a support person with the participant (their consent to what is shared is recorded as given
    to the program, and the participant is told in Telegram and may change or stop it)."""
    from sqlalchemy import func, select

    from bot.clock import clock_from_environment
    from bot.db.models import Participant
    from bot.services.support import service

    settings = settings_from(args)
    now = clock_from_environment().now()
    try:
        shares = service.parse_shares(args.share or "")
    except service.SupportError as exc:
        print(f"error: --share: {exc}", file=sys.stderr)
        return 2

    async def work(session: Any) -> tuple[Any, Any]:
        participant = await session.scalar(select(Participant).where(
            func.lower(Participant.alias) == args.participant.strip().lower()))
        if participant is None:
            raise service.SupportError(f"no participant with alias {args.participant!r}")
        person, issued = await service.invite(session, now, settings, participant, args.name, shares,
                                              by=service.OPERATOR)
        await service.notify_participant(session, person, "invited", now)
        return person, issued

    try:
        person, issued = asyncio.run(with_session(settings, work))
    except service.SupportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    username = asyncio.run(_bot_username(settings))
    print(f"support person: {person.alias} (for {args.participant}); "
          f"shares: {service.shares_text(shares) or 'nothing'}")
    print(f"link:    {issued.link(username)}" if username
          else "link:    (set [telegram] bot_username or BOT_TOKEN to print the link)")
    print(f"token:   {issued.token}")
    print(f"expires: {issued.expires_at:%Y-%m-%d %H:%M} UTC (single use). The participant is told in Telegram "
          "and can change or stop it with /support.")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from bot.clock import clock_from_environment
    from bot.services.people import PeopleError, revoke_invites

    settings = settings_from(args)
    now = clock_from_environment().now()
    try:
        count = asyncio.run(with_session(settings, lambda session: revoke_invites(session, now, args.alias)))
    except PeopleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.alias}: {count} unused invite link(s) revoked" if count
          else f"{args.alias}: no unused invite links")
    return 0


def register(sub: Any, add: Any) -> None:
    invite = sub.add_parser("invite", help="print a single-use enrollment link").add_subparsers(
        dest="who", required=True)
    staff = add("staff", cmd_invite, "invite a staff member", invite)
    staff.add_argument("--alias", required=True, help="the name the program uses for this person")
    staff.add_argument("--role", required=True, choices=["therapist", "coach", "lead", "admin"])
    staff.add_argument("--on-call", action="store_true", help="page this person as the program's backup on call")
    part = add("participant", cmd_invite, "invite a participant", invite)
    part.add_argument("--alias", required=True, help="an alias, not the person's real name")
    part.add_argument("--therapist", required=True, help="alias of the assigned clinician")
    part.add_argument("--backup", help="alias of the backup clinician")
    part.add_argument("--timezone", help="IANA time zone, e.g. America/Chicago")
    part.add_argument("--language", choices=["en", "es"],
                      help="the bot's language for them (default: their Telegram's; they can switch at consent)")
    part.add_argument("--track", metavar="NAME",
                      help="their program track, one of [content] tracks in config.toml: picks their daily read "
                           "(default: none, every snippet)")
    support = add("support", cmd_invite_support,
                  "invite a participant's support person (family or friend), with the participant", invite)
    support.add_argument("--participant", required=True, help="the participant's alias")
    support.add_argument("--name", help="who they are to the participant: a first name or \"mom\" (stored "
                                        "encrypted; default: their alias, e.g. P-101-S1)")
    support.add_argument("--share", default="", metavar="attendance,checkins",
                         help="what the participant shares with them (default: nothing); never answers, "
                              "messages, scores or alerts")
    revoke = add("revoke", cmd_revoke, "make a person's unused invite links stop working", invite)
    revoke.add_argument("alias")
