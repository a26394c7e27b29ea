"""The `iopbot` command. Every subcommand takes --config PATH (default ./config.toml)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import setup_logging


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config))


async def _with_session(settings: Settings, work: Callable[[Any], Awaitable[Any]], *,
                        check_key: bool = True) -> Any:
    """Run `work` in one transaction on an up-to-date schema, after checking the data key (the same
    check as the bot's start: a command never writes text in the clear or with the wrong key)."""
    from bot.clock import clock_from_environment
    from bot.db.engine import make_engine, make_sessionmaker, upgrade_async
    from bot.services.data_key import check_data_key

    await upgrade_async(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        if check_key:
            async with make_sessionmaker(engine)() as session:
                await check_data_key(session, settings.secrets.data_key, clock_from_environment().now())
                await session.commit()
        async with make_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


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


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runtime import run

    settings = _settings(args)
    asyncio.run(run(settings))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.db.engine import upgrade

    settings = _settings(args)
    upgrade(settings.database.url)
    print("database is up to date")
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    from bot.runtime import clock_from_environment
    from bot.services import enrollment

    settings = _settings(args)
    now = clock_from_environment().now()

    async def work(session: Any) -> enrollment.IssuedInvite:
        if args.who == "staff":
            return await enrollment.invite_staff(session, now, settings, args.alias, args.role, on_call=args.on_call)
        return await enrollment.invite_participant(
            session, now, settings, args.alias, args.therapist, backup_alias=args.backup, timezone=args.timezone,
            language=args.language,
        )

    try:
        issued = asyncio.run(_with_session(settings, work))
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


def cmd_content_check(args: argparse.Namespace) -> int:
    from bot.content.check import check_content

    settings = _settings(args)
    directory = Path(args.dir) if args.dir else settings.content_dir
    problems = check_content(directory, grade_limit=settings.content.reading_grade_limit)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    print(f"{directory}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_content_preview(args: argparse.Namespace) -> int:
    from bot.content.preview import main as preview_main

    settings = _settings(args)
    argv = [args.id, "--locale", args.locale, "--dir", str(Path(args.dir) if args.dir else settings.content_dir)]
    return preview_main(argv + (["--callbacks"] if args.callbacks else []), prog="iopbot content preview")


def cmd_content_stats(args: argparse.Namespace) -> int:
    from bot.content.library import load_library
    from bot.services.content_stats import content_stats, format_stats, stats_json

    settings = _settings(args)
    library = load_library(settings.content_dir, allow_drafts=True).library  # drafts may have data too
    stats = asyncio.run(_with_session(settings, lambda session: content_stats(session, library)))
    print(stats_json(stats) if args.json else format_stats(stats))
    return 0


def cmd_safety_classify(args: argparse.Namespace) -> int:
    import json

    from bot.safety.evaluation import classify_lines
    from bot.safety.rules import SafetyRules

    settings = _settings(args)
    rules = SafetyRules.load(settings.content_dir)
    for row in classify_lines(sys.stdin, rules, args.locale):
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


def cmd_safety_eval(args: argparse.Namespace) -> int:
    from bot.safety.evaluation import evaluate, format_report, read_jsonl
    from bot.safety.levels import Level
    from bot.safety.rules import SafetyRules

    settings = _settings(args)
    if not Path(args.file).exists():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    try:
        min_level = Level.parse(args.min_level)
    except ValueError as exc:
        print(f"error: --min-level: {exc}", file=sys.stderr)
        return 2
    rules = SafetyRules.load(settings.content_dir)
    report = evaluate(read_jsonl(Path(args.file)), rules, min_level, args.locale)
    print(report.to_json() if args.json else format_report(report))
    return 0


def cmd_report_alerts(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bot.runtime import clock_from_environment
    from bot.services.escalation import format_report, response_times

    settings = _settings(args)
    since = clock_from_environment().now() - timedelta(days=args.days) if args.days else None
    times = asyncio.run(_with_session(settings, lambda session: response_times(session, since)))
    print(format_report(times, f"last {args.days} days" if args.days else "all time"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iopbot", description="Support bot for virtual IOPs")
    parser.add_argument("--config", default="config.toml", help="path to config.toml (default: ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
            parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text)
        # Accept --config after the subcommand too: `iopbot run --config x.toml`.
        p.add_argument("--config", default=argparse.SUPPRESS, help="path to config.toml")
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "run the bot (polling or webhook, per config)")

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    add("upgrade", cmd_db_upgrade, "create or upgrade the database schema", db)

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
    people_cli.register_invite_revoke(invite, add)

    content = sub.add_parser("content", help="the content library").add_subparsers(dest="content_command",
                                                                                  required=True)
    check = add("check", cmd_content_check, "check content files; prints file:line problems", content)
    check.add_argument("dir", nargs="?", help="content folder (default: [content] directory)")
    preview = add("preview", cmd_content_preview, "show an item as a participant gets it", content)
    preview.add_argument("id")
    preview.add_argument("--locale", default="en")
    preview.add_argument("--dir", help="content folder (default: [content] directory)")
    preview.add_argument("--callbacks", action="store_true", help="show each button's callback data")
    stats = add("stats", cmd_content_stats, "per item: delivered, helpful yes/no, saved; exercises started/finished",
                content)
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")

    safety = sub.add_parser("safety", help="distress detection tools").add_subparsers(dest="safety_command",
                                                                                     required=True)
    classify = add("classify", cmd_safety_classify, "assess lines (or JSONL with text) from stdin", safety)
    classify.add_argument("--locale", default="en")
    evaluation = add("eval", cmd_safety_eval, "precision and recall on labelled JSONL (text, label)", safety)
    evaluation.add_argument("file")
    evaluation.add_argument("--json", action="store_true", help="last line: one JSON object")
    evaluation.add_argument("--min-level", default="concern", help="flagged means this level or above")
    evaluation.add_argument("--locale", default="en")

    report = sub.add_parser("report", help="reports for the program").add_subparsers(dest="report_command",
                                                                                    required=True)
    alerts = add("alerts", cmd_report_alerts, "time to alert, acknowledgement and outcome; outcomes; coverage failures",
                 report)
    alerts.add_argument("--days", type=int, default=0, help="only the last N days (default: all)")

    for register in _EXTRA_COMMANDS:
        register(sub, add)
    return parser


# Feature modules add their subcommands here (content, safety, report, sessions, schedule…).
_EXTRA_COMMANDS: list[Callable[[Any, Any], None]] = []


def _secrets(settings: Settings | None) -> list[str]:
    """Values that must never appear in a log line or an error (also when settings did not load)."""
    import os

    values = [os.environ.get(name, "") for name in ("BOT_TOKEN", "IOPBOT_DATA_KEY", "IOPBOT_NEW_DATA_KEY",
                                                    "IOPBOT_WEBHOOK_SECRET", "OPENAI_API_KEY")]
    if settings is not None:
        s = settings.secrets
        values += [s.bot_token, s.data_key, s.webhook_secret, s.llm_api_key]
    return [v for v in dict.fromkeys(values) if v]


def main(argv: Sequence[str] | None = None) -> int:
    """The `iopbot` command. Every subcommand loads and checks the whole configuration first; a
    wrong setting is one line on stderr (exit 2), never a traceback, and never shows a secret."""
    from bot.logging_setup import redact

    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = _settings(args)
        setup_logging(settings.logging.level, _secrets(settings))
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(redact(f"config error: {exc}", _secrets(settings)), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A failure nobody foresaw: the log has the traceback (secrets redacted by the formatter);
        # stderr gets one line with what to look at.
        import logging

        logging.getLogger("bot.cli").exception("iopbot %s failed", getattr(args, "command", "?"))
        print(redact(f"error: {type(exc).__name__}: {exc}", _secrets(settings)), file=sys.stderr)
        return 1


# Subcommands that live with their feature (each module appends to _EXTRA_COMMANDS on import).
import bot.sandbox.command  # noqa: E402, F401
from bot import calendar_cli  # noqa: E402
from bot import doctor_cli, keys_cli, people_cli  # noqa: E402
from bot.services import schedule_cli  # noqa: E402

_EXTRA_COMMANDS.append(schedule_cli.register)
_EXTRA_COMMANDS.append(calendar_cli.register)
_EXTRA_COMMANDS.append(doctor_cli.register)
_EXTRA_COMMANDS.append(people_cli.register)
_EXTRA_COMMANDS.append(keys_cli.register)

if __name__ == "__main__":
    sys.exit(main())
