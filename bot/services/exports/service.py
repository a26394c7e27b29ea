"""`export`: gather, render in the asked format, and write down the disclosure (42 CFR Part 2).

Each participant in an export is one row in the disclosure log (kind "export", the recipient the
operator named, the time, and the format as reference), and the export is one line in the audit
log. Both are added to the caller's transaction: the caller writes the files first and commits
after, so a file that could not be written is not logged as disclosed, and a disclosure is never
lost for a file that was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.audit import audit, disclose
from bot.services.exports.fhir import render_fhir
from bot.services.exports.records import Catalog, ExportError, gather, participants_to_export
from bot.services.exports.tables import render_csv, render_json

OPERATOR = "operator"  # the audit log's actor for what the `iopbot` command does
MAX_RECIPIENT_CHARS = 80  # the disclosure log's recipient column


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    FHIR = "fhir"


def local_namespace(program_name: str) -> str:
    """"urn:iopbot:<program>" with the program's name as a slug ("Riverside IOP" → riverside-iop)."""
    slug = re.sub(r"[^a-z0-9]+", "-", program_name.lower()).strip("-")
    return f"urn:iopbot:{slug or 'program'}"


def check_recipient(recipient: str) -> str:
    """Who receives the data, as it goes into the disclosure log; raises ExportError."""
    text = " ".join(recipient.split())
    if not text:
        raise ExportError('--recipient is required: who receives this data, e.g. --recipient "EHR import by J. Smith"')
    if len(text) > MAX_RECIPIENT_CHARS:
        raise ExportError(f"--recipient is {len(text)} characters; the disclosure log keeps at most "
                          f"{MAX_RECIPIENT_CHARS}: shorten it")
    return text


@dataclass(frozen=True)
class ExportRequest:
    format: ExportFormat
    recipient: str
    alias: str | None = None  # None: every participant who consented
    include_notes: bool = False
    program_name: str = ""
    identifier_system: str = ""  # default "<local namespace>:alias"
    since: datetime | None = None  # only what was answered (or flagged) from then on


@dataclass(frozen=True)
class Export:
    files: dict[str, bytes]  # csv: one per table; json and fhir: one ("export.json" / "export.fhir.json")
    participants: int
    disclosures: int


async def export(session: AsyncSession, request: ExportRequest, catalog: Catalog, now: datetime) -> Export:
    """The export as files in memory, with a disclosure per participant and an audit line added to
    `session` (not committed). Raises ExportError for an unknown alias or a missing recipient."""
    recipient = check_recipient(request.recipient)
    participants = await participants_to_export(session, request.alias)
    records = await gather(session, participants, include_notes=request.include_notes, since=request.since)
    base = local_namespace(request.program_name)
    if request.format is ExportFormat.CSV:
        files = render_csv(records, catalog, include_notes=request.include_notes)
    elif request.format is ExportFormat.JSON:
        files = {"export.json": render_json(records, catalog, now, include_notes=request.include_notes,
                                            since=request.since)}
    else:
        files = {"export.fhir.json": render_fhir(records, catalog, now, base=base,
                                                 identifier_system=request.identifier_system or f"{base}:alias")}
    what = f"{request.format}{'+notes' if request.include_notes else ''}"
    reference = what if request.since is None else f"{what} since {request.since.isoformat(timespec='minutes')}"
    for record in records:
        disclose(session, now, record.participant_id, recipient, "export", reference)
    audit(session, now, OPERATOR, f"export:{what}:{'one' if request.alias else 'all'}:{len(records)}",
          participant_id=participants[0].id if request.alias and participants else None)
    return Export(files, len(records), len(records))
