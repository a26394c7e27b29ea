"""Reading an import file: the CSV or the iCalendar reader, chosen by the file's extension or
its first line, and a file that is not UTF-8 reported as the problem of its first line."""

from __future__ import annotations

from pathlib import Path

from bot.services.calendar.csv_reader import parse_csv
from bot.services.calendar.ics_reader import parse_ics
from bot.services.calendar.spec import Parsed, Problem


def parse_file(path: Path, *, default_facilitator: str | None = None, default_group: str | None = None) -> Parsed:
    """Parse a .csv or .ics file (by its extension, or by its first line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return Parsed(problems=[Problem(1, f"not UTF-8 text ({exc.reason}); save the file as UTF-8")])
    is_ics = path.suffix.lower() in (".ics", ".ical", ".ifb") or text.lstrip("\ufeff").startswith("BEGIN:VCALENDAR")
    parse = parse_ics if is_ics else parse_csv
    return parse(text, default_facilitator=default_facilitator, default_group=default_group)
