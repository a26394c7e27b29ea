"""`iopbot export`: participants' data for the program's record system, as CSV, JSON or FHIR R4
(bot/services/exports). Each participant exported is written to the disclosure log with the
recipient and the time (42 CFR Part 2), and the export to the audit log.

    iopbot export --participant P-7 --format fhir --recipient "EHR import by J. Smith" --out p7.fhir.json
    iopbot export --all --format csv --recipient "Quarterly outcomes, QA committee" --out export-2026-12/

CSV goes into a directory, one file per table (or into one .zip file when --out ends in .zip);
JSON and FHIR are one file, or stdout when --out is left out. Files are created readable by their
owner only. Free text (check-in notes, typed reasons, clinicians' alert notes) is left out unless
--include-notes: minimum necessary."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from bot.cli.base import settings_from, with_session

FORMATS = ("csv", "json", "fhir")


class _Refused(Exception):
    """One line for the operator: what is wrong and what to do."""


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def _check_out(out: str | None, fmt: str) -> Path | None:
    """Where the export goes (None: stdout), checked before anything is read or logged."""
    if out is None or out == "-":
        if fmt == "csv":
            raise _Refused("CSV is one file per table: give --out DIRECTORY (or --out FILE.zip)")
        return None
    path = Path(out).expanduser()
    into_directory = fmt == "csv" and not _is_zip(path)
    if into_directory:
        if path.exists() and not path.is_dir():
            raise _Refused(f"cannot write {path}: it is a file; CSV goes into a directory (or name a .zip file)")
        folder = path if path.is_dir() else path.parent
    else:
        if path.is_dir():
            raise _Refused(f"cannot write {path}: it is a directory; name a file, e.g. {path / f'export.{fmt}.json'}")
        folder = path.parent
    if not folder.is_dir():
        raise _Refused(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _Refused(f"cannot write {path}: no permission to write in {folder}")
    return path


def _write_private(path: Path, data: bytes) -> None:
    """Write through a temporary file beside it, owner-only, then move it in place: a reader never
    sees half a file, and nobody else on the machine can read it."""
    part = path.with_name(f".{path.name}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _write(path: Path | None, fmt: str, files: dict[str, bytes]) -> str:
    """Write the export; returns where it went, for the summary line."""
    if path is None:
        for data in files.values():
            sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return "stdout"
    if fmt == "csv" and _is_zip(path):
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        _write_private(path, buffer.getvalue())
        return str(path)
    if fmt == "csv":
        path.mkdir(mode=0o700, exist_ok=True)
        for name, data in files.items():
            _write_private(path / name, data)
        return f"{path}{os.sep} ({', '.join(files)})"
    (data,) = files.values()
    _write_private(path, data)
    return str(path)


def _since(text: str | None, timezone: str) -> Any:
    """--since YYYY-MM-DD: from midnight of that day in the program's time zone (aware UTC)."""
    if text is None:
        return None
    from datetime import UTC, date, datetime, time
    from zoneinfo import ZoneInfo

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _Refused(f"--since {text!r} is not a date: write it as YYYY-MM-DD, like 2026-03-01") from None
    return datetime.combine(day, time(0), ZoneInfo(timezone)).astimezone(UTC)


def cmd_export(args: argparse.Namespace) -> int:
    from bot.clock import clock_from_environment
    from bot.services.exports.records import Catalog, ExportError
    from bot.services.exports.service import ExportFormat, ExportRequest, check_recipient, export

    settings = settings_from(args)
    try:
        recipient = check_recipient(args.recipient or "")
        path = _check_out(args.out, args.format)
        since = _since(args.since, settings.program.default_timezone)
        if args.identifier_system is not None and (not args.identifier_system.strip()
                                                   or any(c.isspace() for c in args.identifier_system)
                                                   or ":" not in args.identifier_system):
            raise _Refused(f"--identifier-system {args.identifier_system!r} is not a URI: give one like "
                           "https://ehr.example.org/mrn or urn:oid:1.2.3.4")
    except (ExportError, _Refused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    request = ExportRequest(ExportFormat(args.format), recipient, alias=args.participant,
                            include_notes=args.include_notes, program_name=settings.program.name,
                            identifier_system=args.identifier_system or "", since=since)
    catalog = Catalog.load(settings.content_dir, settings.checkin.questionnaire)
    now = clock_from_environment().now()

    async def work(session: Any) -> tuple[int, str]:
        done = await export(session, request, catalog, now)
        # Written before the transaction commits: a file that could not be written is not logged
        # as disclosed (the error rolls the disclosures back).
        return done.participants, _write(path, args.format, done.files)

    try:
        count, where = asyncio.run(with_session(settings, work))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}; nothing was logged as disclosed",
              file=sys.stderr)
        return 1
    notes = (" with notes" if args.include_notes else "") + (f" since {args.since}" if args.since else "")
    # The summary goes to stderr, so stdout holds nothing but the export when it is written there.
    print(f"Exported {count} participant(s) as {args.format}{notes} to {where}; {count} disclosure(s) to "
          f"{recipient!r} recorded.", file=sys.stderr)
    return 0


def register(sub: Any, add: Any) -> None:
    export = add("export", cmd_export, "participants' data for the program's record system (CSV, JSON, FHIR R4); "
                 "each one is logged as a disclosure")
    who = export.add_mutually_exclusive_group(required=True)
    who.add_argument("--participant", metavar="ALIAS", help="one participant, by alias")
    who.add_argument("--all", action="store_true", help="every participant who consented (an empty program "
                     "gives empty tables or an empty Bundle)")
    export.add_argument("--format", choices=FORMATS, required=True,
                        help="csv: one file per table; json: one document; fhir: a FHIR R4 Bundle (collection)")
    export.add_argument("--recipient", metavar="TEXT",
                        help='required: who receives the data, for the disclosure log, e.g. "EHR import by J. Smith"')
    export.add_argument("--out", metavar="PATH",
                        help="csv: a directory (created) or a .zip file; json, fhir: a file (default: stdout)")
    export.add_argument("--include-notes", action="store_true",
                        help="also the free text (check-in notes, typed reasons, clinicians' alert notes), "
                             "decrypted; left out by default (minimum necessary)")
    export.add_argument("--since", metavar="YYYY-MM-DD",
                        help="only what was answered or flagged from that day on (midnight in [program] "
                             "default_timezone), e.g. the day after the last export")
    export.add_argument("--identifier-system", metavar="URI",
                        help="FHIR: the Patient identifier system for the alias (default "
                             "urn:iopbot:<program>:alias), e.g. the one your record system uses")
