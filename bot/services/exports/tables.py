"""The export as tables (CSV, one file per table) and as one JSON document.

CSV: `participants.csv`, `checkins.csv`, `questionnaires.csv`, `questionnaire_items.csv`,
`alerts.csv`, `attendance.csv`, every row starting with the participant's alias; a questionnaire's
items link to it by `response_id`. UTF-8, a header row, RFC 4180 quoting. Times are ISO 8601 in
UTC; numbers are written as stored (7, 6.5). A free-text cell (only with notes) that starts with
= + - @ gets a leading ' so a spreadsheet shows it instead of running it as a formula.

JSON: one document, `{"format": "iopbot-export", "version": 1, "exported_at", "since", "include_notes",
"participants": [{alias, status, ..., "checkins": [...], "questionnaires": [{..., "items": [...]}],
"alerts": [...], "attendance": [...]}]}`; free-text keys are present only with notes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from bot.services.exports.records import Catalog, ParticipantRecord

FORMAT_VERSION = 1
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _time(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value.isoformat()


def _number(value: float | None) -> int | float | None:
    """7.0 as 7 (a scale answer), 6.5 as 6.5: the number as the participant gave it."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _free_text(value: str | None) -> str | None:
    if value and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _item_loinc(catalog: Catalog, instrument_id: str, item_id: str) -> str:
    instrument = catalog.instruments.get(instrument_id)
    item = instrument.item(item_id) if instrument is not None else None
    return item.loinc if item is not None else ""


def tables(records: Sequence[ParticipantRecord], catalog: Catalog, *,
           include_notes: bool) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Every table's header and rows (file name without .csv → (columns, rows))."""
    note = ["note"] if include_notes else []
    out: dict[str, tuple[list[str], list[list[Any]]]] = {
        "participants": (["alias", "status", "consent_version", "consented_at", "discharged_at"], []),
        "checkins": (["alias", "date", "question", "number", "choice", *note, "answered_at"], []),
        "questionnaires": (["alias", "response_id", "instrument", "version", "language", "date", "completed_at",
                            "total", "band", "safety_level"], []),
        "questionnaire_items": (["alias", "response_id", "instrument", "item", "loinc", "value"], []),
        "alerts": (["alias", "at", "level", "source", "status", "acknowledged_at", "resolved_at", "outcome",
                    *(["outcome_note"] if include_notes else [])], []),
        "attendance": (["alias", "session_start", "session_kind", "status", "reason", *note, "answered_at"], []),
    }
    for r in records:
        a = r.alias
        out["participants"][1].append([a, r.status, r.consent_version, _time(r.consented_at),
                                       _time(r.discharged_at)])
        for c in r.checkins:
            out["checkins"][1].append([a, _time(c.date), c.question, _number(c.number), c.choice,
                                       *([_free_text(c.note)] if include_notes else []), _time(c.answered_at)])
        for q in r.questionnaires:
            out["questionnaires"][1].append([a, q.response_id, q.instrument, q.version, q.locale, _time(q.date),
                                             _time(q.completed_at), q.total, q.band, q.level])
            for i in q.items:
                out["questionnaire_items"][1].append([a, q.response_id, q.instrument, i.item,
                                                      _item_loinc(catalog, q.instrument, i.item), i.value])
        for e in r.alerts:
            out["alerts"][1].append([a, _time(e.at), e.level, e.source, e.status, _time(e.acknowledged_at),
                                     _time(e.resolved_at), e.outcome,
                                     *([_free_text(e.outcome_note)] if include_notes else [])])
        for t in r.attendance:
            out["attendance"][1].append([a, _time(t.session_start), t.session_kind, t.status, t.reason,
                                         *([_free_text(t.note)] if include_notes else []), _time(t.answered_at)])
    return out


def _csv(columns: list[str], rows: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue().encode("utf-8")


def render_csv(records: Sequence[ParticipantRecord], catalog: Catalog, *, include_notes: bool) -> dict[str, bytes]:
    """One CSV file per table, by file name; every table is written, with its header, even when empty."""
    return {f"{name}.csv": _csv(columns, rows)
            for name, (columns, rows) in tables(records, catalog, include_notes=include_notes).items()}


def document(records: Sequence[ParticipantRecord], catalog: Catalog, now: datetime, *,
             include_notes: bool, since: datetime | None = None) -> dict[str, Any]:
    """The export as one JSON-ready dict, nested by participant."""

    def notes(**values: str | None) -> dict[str, str | None]:
        return values if include_notes else {}

    participants = []
    for r in records:
        participants.append({
            "alias": r.alias,
            "status": r.status,
            "consent_version": r.consent_version,
            "consented_at": _time(r.consented_at),
            "discharged_at": _time(r.discharged_at),
            "checkins": [{"date": _time(c.date), "question": c.question, "number": _number(c.number),
                          "choice": c.choice, **notes(note=c.note), "answered_at": _time(c.answered_at)}
                         for c in r.checkins],
            "questionnaires": [{
                "response_id": q.response_id, "instrument": q.instrument, "version": q.version, "language": q.locale,
                "date": _time(q.date), "completed_at": _time(q.completed_at), "total": q.total, "band": q.band,
                "safety_level": q.level,
                "items": [{"item": i.item, "loinc": _item_loinc(catalog, q.instrument, i.item) or None,
                           "value": i.value} for i in q.items],
            } for q in r.questionnaires],
            "alerts": [{"at": _time(e.at), "level": e.level, "source": e.source, "status": e.status,
                        "acknowledged_at": _time(e.acknowledged_at), "resolved_at": _time(e.resolved_at),
                        "outcome": e.outcome, **notes(outcome_note=e.outcome_note)} for e in r.alerts],
            "attendance": [{"session_start": _time(t.session_start), "session_kind": t.session_kind,
                            "status": t.status, "reason": t.reason, **notes(note=t.note),
                            "answered_at": _time(t.answered_at)} for t in r.attendance],
        })
    return {"format": "iopbot-export", "version": FORMAT_VERSION, "exported_at": _time(now), "since": _time(since),
            "include_notes": include_notes, "participants": participants}


def render_json(records: Sequence[ParticipantRecord], catalog: Catalog, now: datetime, *,
                include_notes: bool, since: datetime | None = None) -> bytes:
    data = document(records, catalog, now, include_notes=include_notes, since=since)
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
