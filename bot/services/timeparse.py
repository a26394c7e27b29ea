"""Reading times and time zones the way people type them."""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import lru_cache

_TIME = re.compile(
    r"^\s*(?P<h>\d{1,2})(?:\s*[:.h]\s*(?P<m>\d{2})?)?\s*(?P<ampm>a\.?m\.?|p\.?m\.?)?\s*$", re.IGNORECASE
)

# Names people use for US zones (the default program is in the US), in English and Spanish.
_ZONE_ALIASES = {
    "eastern": "America/New_York", "et": "America/New_York", "est": "America/New_York",
    "edt": "America/New_York", "central": "America/Chicago", "ct": "America/Chicago",
    "cst": "America/Chicago", "cdt": "America/Chicago", "mountain": "America/Denver",
    "mst": "America/Denver", "mdt": "America/Denver", "arizona": "America/Phoenix",
    "pacific": "America/Los_Angeles", "pt": "America/Los_Angeles", "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles", "alaska": "America/Anchorage", "hawaii": "Pacific/Honolulu",
    "utc": "UTC", "gmt": "UTC", "nyc": "America/New_York", "la": "America/Los_Angeles",
    "san francisco": "America/Los_Angeles", "seattle": "America/Los_Angeles",
    "boston": "America/New_York", "miami": "America/New_York", "atlanta": "America/New_York",
    "washington": "America/New_York", "philadelphia": "America/New_York", "dallas": "America/Chicago",
    "houston": "America/Chicago", "austin": "America/Chicago", "san antonio": "America/Chicago",
    "minneapolis": "America/Chicago", "salt lake city": "America/Denver", "las vegas": "America/Los_Angeles",
    "san diego": "America/Los_Angeles", "san juan": "America/Puerto_Rico", "ciudad de mexico": "America/Mexico_City",
    "cdmx": "America/Mexico_City", "nueva york": "America/New_York", "londres": "Europe/London",
}


def parse_local_time(text: str) -> str | None:
    """'9', '9am', '9:30 pm', '21:30', '21.30', '21h' → 'HH:MM'; anything else → None."""
    match = _TIME.match(text or "")
    if not match:
        return None
    hour, minute = int(match["h"]), int(match["m"] or 0)
    ampm = (match["ampm"] or "").lower().replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return f"{hour:02d}:{minute:02d}"


def parse_quiet_hours(text: str) -> tuple[str, str] | None:
    """'22:00-07:00', '10pm - 7am', '22 to 7' → ('22:00', '07:00'); start == end means none."""
    parts = re.split(r"\s*(?:-|–|—|to|a|hasta)\s*", (text or "").strip(), maxsplit=1, flags=re.IGNORECASE)
    if len(parts) != 2:
        return None
    start, end = parse_local_time(parts[0]), parse_local_time(parts[1])
    if start is None or end is None:
        return None
    return start, end


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[\s_]+", " ", text).strip().lower()


@lru_cache(maxsize=1)
def _zone_index() -> tuple[dict[str, str], dict[str, str]]:
    exact: dict[str, str] = {}
    by_city: dict[str, str] = {}
    for name in sorted(zoneinfo.available_timezones()):
        exact[name.lower()] = name
        if "/" in name and not name.startswith(("Etc/", "SystemV/")):
            by_city.setdefault(_fold(name.rsplit("/", 1)[1]), name)
    return exact, by_city


def find_timezone(text: str) -> str | None:
    """An IANA name ('America/Denver'), a city ('denver', 'Mexico City') or a US zone name → IANA."""
    raw = (text or "").strip()
    if not raw or len(raw) > 64:
        return None
    exact, by_city = _zone_index()
    if raw.lower() in exact:
        return exact[raw.lower()]
    folded = _fold(raw)
    return _ZONE_ALIASES.get(folded) or by_city.get(folded)
