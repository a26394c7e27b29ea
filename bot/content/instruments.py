"""Standardized questionnaires (PHQ-9, GAD-7, ...): `content/<locale>/instruments/<id>.toml`.

An instrument is data: item ids, answer options with their values, which items are summed, the
score bands with a plain explanation for the participant, and which items are a safety signal on
their own. Scores are computed from item ids and option values, never from the words, so a
translation (same ids, values and bands; other words) scores the same. A new instrument is a new
file and its name in `[instruments] ask`; no code.

Every problem is reported as `file:line: severity: message`, like the rest of the content library.
The format is described in content/FORMAT.md, "Instruments".

LOINC codes are optional data beside the items (`loinc` for the instrument's panel and for each
item, `loinc_total` for the total score, `loinc_answers` for the options' answer codes by value,
beside the options they code): the exports
(bot/services/exports) write FHIR with them. They are checked for shape and, for question codes,
for LOINC's check digit, so a typo is caught by `iopbot content check`, not by a record system.
A problem with a code is a warning, and the code is left out (the export then uses local codes):
the questionnaire itself is still asked, since a code only names it for other systems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from bot.content.problems import Problem, ProblemSink, Severity, read_toml

FALLBACK_LOCALE = "en"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
MAX_ID_CHARS = 12  # instrument ids travel in flow runs and row payloads
MAX_ITEM_CHARS = 24  # item ids travel in button data: fl:<run>:<item>:<value>, 64 bytes at most
MAX_LABEL_CHARS = 40
MAX_TEXT_CHARS = 1000
# A LOINC term ("44261-6": digits, a hyphen, the check digit) and a LOINC answer ("LA6568-5").
LOINC_RE = re.compile(r"^(\d{1,7})-(\d)$")
LOINC_ANSWER_RE = re.compile(r"^LA\d{1,8}-\d$")
# CLINICAL.md: PHQ-9 item 9 (thoughts of being better off dead or of hurting oneself) above 0 is a
# safety trigger whatever the total. bot/safety/triggers.py reads it by this id.
REQUIRED_SAFETY_ITEMS = {"phq9": "phq9_9"}

_TOP_KEYS = frozenset({"id", "title", "author", "clinical_reviewer", "reviewed_on", "version", "status", "intro",
                       "hint", "source", "scoring", "options", "safety_items", "items", "bands", "loinc",
                       "loinc_total", "loinc_answers"})
_ITEM_KEYS = frozenset({"id", "text", "options", "scored", "loinc", "loinc_answers"})
_BAND_KEYS = frozenset({"id", "min", "max", "label", "explanation"})


class InstrumentContentError(Exception):
    """An instrument cannot be used; the message lists every problem with file:line."""


@dataclass(frozen=True)
class Option:
    value: int
    label: str
    loinc: str = ""  # the LOINC answer code ("LA6568-5"), if any


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    options: tuple[Option, ...]
    line: int
    scored: bool = True
    loinc: str = ""  # the item's LOINC code ("44250-9"), if any


@dataclass(frozen=True)
class Band:
    id: str
    low: int
    high: int
    label: str
    explanation: str


@dataclass(frozen=True)
class Instrument:
    id: str
    locale: str
    path: Path
    title: str
    intro: str
    hint: str
    version: str
    status: str
    items: tuple[Item, ...]
    bands: tuple[Band, ...]
    safety_items: tuple[str, ...] = ()
    loinc: str = ""  # the instrument's LOINC panel ("44249-1"), if any
    loinc_total: str = ""  # the LOINC code of its total score ("44261-6"), if any

    @property
    def coded(self) -> bool:
        """Every part has a LOINC code: the FHIR export can name the LOINC questionnaire and items."""
        return bool(self.loinc) and all(i.loinc for i in self.items)

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)

    def after(self, item_id: str) -> str | None:
        ids = [i.id for i in self.items]
        index = ids.index(item_id)
        return ids[index + 1] if index + 1 < len(ids) else None

    @property
    def scored_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.scored)

    @property
    def lowest_total(self) -> int:
        return sum(min(o.value for o in i.options) for i in self.scored_items)

    @property
    def highest_total(self) -> int:
        return sum(max(o.value for o in i.options) for i in self.scored_items)

    def band(self, total: int) -> Band | None:
        return next((b for b in self.bands if b.low <= total <= b.high), None)


class _Lines:
    """Where keys are in the file, for problem lines (tomllib does not say): the top of the file,
    and each [[items]] or [[bands]] table."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.tables: dict[str, list[int]] = {"items": [], "bands": []}
        for number, line in enumerate(self.lines, 1):
            header = re.fullmatch(r"\[\[\s*(\w+)\s*\]\]\s*(#.*)?", line.strip())
            if header and header.group(1) in self.tables:
                self.tables[header.group(1)].append(number)
        starts = sorted(n for found in self.tables.values() for n in found)
        self.top_end = starts[0] - 1 if starts else len(self.lines)

    def start(self, table: str, index: int) -> int:
        found = self.tables[table]
        return found[index] if index < len(found) else 1

    def key(self, key: str, table: str | None = None, index: int = 0) -> int:
        if table is None:
            start, end = 1, self.top_end
        else:
            start = self.start(table, index)
            later = [n for found in self.tables.values() for n in found if n > start]
            end = min(later) - 1 if later else len(self.lines)
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, end + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return start


def _text(table: dict[str, Any], key: str, sink: ProblemSink, line: int, where: str, *, required: bool = True,
          limit: int = MAX_TEXT_CHARS) -> str:
    value = table.get(key)
    if value is None:
        if required:
            sink.error(line, f"missing '{key}' in {where}: add {key} = \"...\"")
        return ""
    if not isinstance(value, str) or not value.strip():
        sink.error(line, f"{where}: '{key}' must be non-empty text in quotes")
        return ""
    if len(value) > limit:
        sink.error(line, f"{where}: '{key}' has {len(value)} characters; keep it under {limit}")
    return value.strip()


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def loinc_check_digit(number: str) -> int:
    """LOINC's mod 10 check digit of the digits before the hyphen (the LOINC Users' Guide): from the
    right, every other digit starting with the last is doubled, the digits of it all are summed,
    and the check digit brings the sum up to a multiple of ten."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return (10 - total % 10) % 10


def _loinc(table: dict[str, Any], key: str, sink: ProblemSink, line: int, where: str) -> str:
    """An optional LOINC code: "" when absent or when it does not look like one (a warning says so)."""
    value = table.get(key)
    if value is None:
        return ""
    match = LOINC_RE.match(value) if isinstance(value, str) else None
    if match is None:
        sink.warning(line, f"{where}: '{key}' must be a LOINC code in quotes, digits, a hyphen and the check digit, "
                     f"like {key} = \"44250-9\", not {value!r}")
        return ""
    expected = loinc_check_digit(match.group(1))
    if int(match.group(2)) != expected:
        sink.warning(line, f"{where}: '{key}' = \"{value}\" is not a LOINC code: its check digit would be {expected} "
                     f"(\"{match.group(1)}-{expected}\"); copy the code again from loinc.org")
        return ""
    return value


def _answer_codes(table: dict[str, Any], options: tuple[Option, ...], sink: ProblemSink, line: int,
                  where: str) -> tuple[Option, ...]:
    """`options` with their LOINC answer codes from `loinc_answers = { 0 = "LA6568-5", ... }` (by value)."""
    raw = table.get("loinc_answers")
    if raw is None:
        return options
    example = 'loinc_answers = { 0 = "LA6568-5", 1 = "LA6569-3" }'
    if not isinstance(raw, dict):
        sink.warning(line, f"{where}: 'loinc_answers' must give the LOINC answer code of each option value, "
                     f"like {example}")
        return options
    values = {str(o.value) for o in options}
    codes: dict[str, str] = {}
    for key, code in raw.items():
        if key not in values:
            sink.warning(line, f"{where}: loinc_answers names the option value {key}, which is not an option here "
                         f"({', '.join(sorted(values, key=int))})")
        elif not isinstance(code, str) or not LOINC_ANSWER_RE.match(code):
            sink.warning(line, f"{where}: the LOINC answer code of option {key} must look like \"LA6568-5\", "
                         f"not {code!r}")
        else:
            codes[key] = code
    return tuple(replace(o, loinc=codes.get(str(o.value), "")) for o in options)


def _options(raw: Any, sink: ProblemSink, line: int, where: str) -> tuple[Option, ...]:
    example = 'options = [{ value = 0, label = "Not at all" }, { value = 1, label = "Several days" }]'
    if not isinstance(raw, list) or len(raw) < 2:
        sink.error(line, f"{where}: 'options' must list at least two answers, like {example}")
        return ()
    options: list[Option] = []
    for option in raw:
        if not isinstance(option, dict) or set(option) != {"value", "label"}:
            sink.error(line, f"{where}: each option needs exactly a value and a label, like "
                       "{ value = 0, label = \"Not at all\" }")
            continue
        value, label = option["value"], option["label"]
        if not _whole(value) or not 0 <= value <= 99:
            sink.error(line, f"{where}: option value {value!r} must be a whole number from 0 to 99 (it is scored)")
            continue
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
            sink.error(line, f"{where}: the label of option {value} must be text of 1 to {MAX_LABEL_CHARS} "
                       "characters")
            continue
        if any(o.value == value for o in options):
            sink.error(line, f"{where}: option value {value} is used twice")
            continue
        options.append(Option(value, label.strip()))
    return tuple(options)


def _item(raw: Any, index: int, shared: tuple[Option, ...], lines: _Lines, sink: ProblemSink) -> Item | None:
    anchor = lines.start("items", index)
    if not isinstance(raw, dict):
        sink.error(anchor, "each [[items]] entry must be a table of keys")
        return None
    for key in sorted(set(raw) - _ITEM_KEYS):
        sink.error(lines.key(key, "items", index), f"unknown key '{key}' in an item; known keys: "
                   f"{', '.join(sorted(_ITEM_KEYS))}")
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not SLUG_RE.match(item_id) or len(item_id) > MAX_ITEM_CHARS:
        sink.error(lines.key("id", "items", index), f"item {index + 1}: 'id' must be lowercase letters, digits "
                   f"and _ (at most {MAX_ITEM_CHARS}), like id = \"phq9_1\"")
        return None
    where = f"item '{item_id}'"
    text = _text(raw, "text", sink, lines.key("text", "items", index), where)
    scored = raw.get("scored", True)
    if not isinstance(scored, bool):
        sink.error(lines.key("scored", "items", index), f"{where}: 'scored' must be true or false")
        scored = True
    options = shared
    if "options" in raw:
        options = _options(raw["options"], sink, lines.key("options", "items", index), where)
        options = _answer_codes(raw, options, sink, lines.key("loinc_answers", "items", index), where)
    elif "loinc_answers" in raw:
        sink.warning(lines.key("loinc_answers", "items", index), f"{where}: 'loinc_answers' belongs beside the "
                     "options it codes: at the top of the file for the shared options")
    elif not shared:
        sink.error(anchor, f"{where}: no answer options: add 'options' at the top of the file (shared by "
                   "every item) or in this item")
    loinc = _loinc(raw, "loinc", sink, lines.key("loinc", "items", index), where)
    if not text or not options:
        return None
    return Item(item_id, text, options, anchor, scored, loinc)


def _bands(raw: Any, lines: _Lines, sink: ProblemSink, low: int | None, high: int | None) -> tuple[Band, ...]:
    if not isinstance(raw, list) or not raw:
        sink.error(1, "no bands: add [[bands]] tables with id, min, max, label and explanation, from the lowest "
                   "total to the highest")
        return ()
    bands: list[Band] = []
    for index, band in enumerate(raw):
        anchor = lines.start("bands", index)
        if not isinstance(band, dict):
            sink.error(anchor, "each [[bands]] entry must be a table of keys")
            continue
        for key in sorted(set(band) - _BAND_KEYS):
            sink.error(lines.key(key, "bands", index), f"unknown key '{key}' in a band; known keys: "
                       f"{', '.join(sorted(_BAND_KEYS))}")
        band_id = band.get("id")
        if not isinstance(band_id, str) or not SLUG_RE.match(band_id) or len(band_id) > MAX_ITEM_CHARS:
            sink.error(lines.key("id", "bands", index), f"band {index + 1}: 'id' must be lowercase letters, digits "
                       "and _, like id = \"mild\"")
            continue
        where = f"band '{band_id}'"
        bounds = band.get("min"), band.get("max")
        if not all(_whole(b) for b in bounds) or bounds[0] > bounds[1]:  # type: ignore[operator]
            sink.error(lines.key("min", "bands", index), f"{where}: 'min' and 'max' must be whole numbers "
                       f"with min <= max, like min = 5 and max = 9, not {bounds[0]!r} and {bounds[1]!r}")
            continue
        label = _text(band, "label", sink, lines.key("label", "bands", index), where, limit=MAX_LABEL_CHARS)
        explanation = _text(band, "explanation", sink, lines.key("explanation", "bands", index), where)
        if any(b.id == band_id for b in bands):
            sink.error(lines.key("id", "bands", index), f"band id '{band_id}' is used twice")
            continue
        if not label or not explanation:
            continue
        expected = bands[-1].high + 1 if bands else low
        if expected is not None and bounds[0] != expected:
            what = "the lowest possible total" if not bands else f"right after band '{bands[-1].id}'"
            sink.error(lines.key("min", "bands", index), f"{where}: min = {bounds[0]} but it must start at "
                       f"{expected} ({what}): bands go from the lowest total to the highest, without gaps or "
                       "overlaps")
        bands.append(Band(band_id, int(bounds[0]), int(bounds[1]), label, explanation))  # type: ignore[arg-type]
    if bands and high is not None and bands[-1].high != high and not sink.has_errors:
        sink.error(lines.key("max", "bands", len(bands) - 1), f"band '{bands[-1].id}': max = {bands[-1].high} but "
                   f"the highest possible total is {high}: the last band must end there")
    return tuple(bands)


def parse_instrument(path: Path, locale: str) -> tuple[Instrument | None, list[Problem]]:
    """Read one instrument file; None when it has errors (every problem is returned)."""
    sink = ProblemSink(path)
    read = read_toml(sink)
    if read is None:
        return None, sink.problems
    text, data = read
    lines = _Lines(text)
    for key in sorted(set(data) - _TOP_KEYS):
        sink.error(lines.key(key), f"unknown key '{key}'; known keys: {', '.join(sorted(_TOP_KEYS))}")
    if data.get("id") != path.stem or not SLUG_RE.match(path.stem) or len(path.stem) > MAX_ID_CHARS:
        sink.error(lines.key("id"), f"'id' must be the file name without .toml (lowercase letters, digits and _, "
                   f"at most {MAX_ID_CHARS}): id = \"{path.stem}\"")
    title = _text(data, "title", sink, lines.key("title"), "the file", limit=60)
    intro = _text(data, "intro", sink, lines.key("intro"), "the file")
    hint = _text(data, "hint", sink, lines.key("hint"), "the file", required=False, limit=200)
    _text(data, "author", sink, lines.key("author"), "the file", limit=200)
    status = data.get("status")
    if status not in ("draft", "reviewed"):
        sink.error(lines.key("status"), f"'status' must be \"draft\" or \"reviewed\", not {status!r}")
    if status == "reviewed":
        _text(data, "clinical_reviewer", sink, lines.key("clinical_reviewer"), "a reviewed file", limit=200)
        if not isinstance(data.get("reviewed_on"), date):
            sink.error(lines.key("reviewed_on"), "a reviewed file needs reviewed_on = <date>, like 2026-12-05")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int | str):
        sink.error(lines.key("version"), "missing 'version': add version = 1 and raise it with every change")
    if data.get("scoring", "sum") != "sum":
        sink.error(lines.key("scoring"), f"'scoring' must be \"sum\" (the total of the scored items' values), "
                   f"not {data.get('scoring')!r}")
    shared = _options(data["options"], sink, lines.key("options"), "the file") if "options" in data else ()
    shared = _answer_codes(data, shared, sink, lines.key("loinc_answers"), "the file")
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        sink.error(1, "no items: add at least one [[items]] table with an id and a text")
        return None, sink.problems
    items: list[Item] = []
    for index, raw in enumerate(raw_items):
        item = _item(raw, index, shared, lines, sink)
        if item is None:
            continue
        if any(i.id == item.id for i in items):
            sink.error(lines.key("id", "items", index), f"item id '{item.id}' is used twice")
            continue
        items.append(item)
    scored = [i for i in items if i.scored]
    if items and not scored:
        sink.error(1, "no item is scored: at least one item must count towards the total")
    complete = not sink.has_errors and bool(scored)
    low = sum(min(o.value for o in i.options) for i in scored) if complete else None
    high = sum(max(o.value for o in i.options) for i in scored) if complete else None
    bands = _bands(data.get("bands"), lines, sink, low, high)
    safety = data.get("safety_items", [])
    if not isinstance(safety, list) or not all(isinstance(s, str) for s in safety):
        sink.error(lines.key("safety_items"), "'safety_items' must be a list of item ids, like [\"phq9_9\"]")
        safety = []
    for item_id in safety:
        if not any(i.id == item_id for i in items):
            sink.error(lines.key("safety_items"), f"safety_items names '{item_id}', which is not an item here")
    required = REQUIRED_SAFETY_ITEMS.get(path.stem)
    if required is not None and required not in safety:
        sink.error(lines.key("safety_items") if "safety_items" in data else 1,
                   f"{path.stem} must list its item '{required}' in safety_items = [\"{required}\"]: an answer above "
                   "0 is a safety signal whatever the total, and the care team is alerted (CLINICAL.md)")
    loinc = _loinc(data, "loinc", sink, lines.key("loinc"), "the file")
    loinc_total = _loinc(data, "loinc_total", sink, lines.key("loinc_total"), "the file")
    codes = [c for c in [loinc, loinc_total, *(i.loinc for i in items)] if c]
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        sink.warning(lines.key("loinc"), f"LOINC code {code} is given to more than one part of this instrument; each "
                     "item, the panel and the total have codes of their own (the export uses local codes until fixed)")
        loinc = ""
    if sink.has_errors:
        return None, sink.problems
    return Instrument(path.stem, locale, path, title, intro, hint, str(version), str(status), tuple(items),
                      bands, tuple(safety), loinc, loinc_total), sink.problems


def _same_scoring(english: Instrument, other: Instrument, sink: ProblemSink) -> None:
    """A translation asks the same items with the same values, bands and safety items as English."""
    if [i.id for i in other.items] != [i.id for i in english.items]:
        sink.error(1, f"asks {[i.id for i in other.items]} but English asks {[i.id for i in english.items]}: "
                   "a translation must ask the same items in the same order")
        return
    for en, item in zip(english.items, other.items, strict=True):
        if [o.value for o in item.options] != [o.value for o in en.options] or item.scored != en.scored:
            sink.error(item.line, f"item '{item.id}' must offer the same option values as English "
                       f"({', '.join(str(o.value) for o in en.options)}) and be scored the same; translate only "
                       "labels and texts")
    if [(b.id, b.low, b.high) for b in other.bands] != [(b.id, b.low, b.high) for b in english.bands]:
        sink.error(1, "the bands differ from English (ids, min and max must be the same; translate only label "
                   "and explanation)")
    if other.safety_items != english.safety_items:
        sink.error(1, f"safety_items must be the same as English: {list(english.safety_items)}")
    if (other.loinc, other.loinc_total) != (english.loinc, english.loinc_total):
        sink.warning(1, f"loinc and loinc_total must be the same as English ({english.loinc or 'none'}, "
                     f"{english.loinc_total or 'none'}): the codes name the instrument, not the language")
    for en, item in zip(english.items, other.items, strict=True):
        if item.loinc != en.loinc or [o.loinc for o in item.options] != [o.loinc for o in en.options]:
            sink.warning(item.line, f"item '{item.id}' must have the same LOINC codes as English (item and options)")


@dataclass(frozen=True)
class InstrumentContent:
    """Every instrument in every locale, English as the fallback."""

    by_locale: dict[str, dict[str, Instrument]]
    problems: tuple[Problem, ...] = ()

    def find(self, instrument_id: str, locale: str) -> Instrument | None:
        for key in (locale, locale.split("-")[0], FALLBACK_LOCALE):
            found = self.by_locale.get(key, {}).get(instrument_id)
            if found is not None:
                return found
        return None

    def get(self, instrument_id: str, locale: str) -> Instrument:
        found = self.find(instrument_id, locale)
        if found is None:
            raise LookupError(f"no instrument {instrument_id!r}")
        return found

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self.by_locale.get(FALLBACK_LOCALE, {}))


def check_instruments(content_dir: Path, *, allow_drafts: bool = False
                      ) -> tuple[dict[str, dict[str, Instrument]], list[Problem]]:
    """Every locale's `instruments/*.toml`, and every problem found (sorted by file and line)."""
    problems: list[Problem] = []
    found: dict[str, dict[str, Instrument]] = {}
    for path in sorted(content_dir.glob("*/instruments/*.toml")):
        instrument, file_problems = parse_instrument(path, path.parent.parent.name)
        problems.extend(file_problems)
        if instrument is None:
            continue
        if instrument.status == "draft" and not allow_drafts:
            problems.append(Problem(path, 1, Severity.WARNING, "status is draft: not used until reviewed "
                                    "(or [content] allow_drafts = true)"))
            continue
        found.setdefault(instrument.locale, {})[instrument.id] = instrument
    english = found.get(FALLBACK_LOCALE, {})
    for locale, instruments in found.items():
        if locale == FALLBACK_LOCALE:
            continue
        for instrument_id, instrument in list(instruments.items()):
            sink = ProblemSink(instrument.path)
            if instrument_id not in english:
                sink.error(1, f"there is no English {instrument_id}.toml: English is the fallback for every "
                           "language; add it there first")
            else:
                _same_scoring(english[instrument_id], instrument, sink)
            problems.extend(sink.problems)
            if sink.has_errors:
                del instruments[instrument_id]  # English is used for this language until it is fixed
    locale_dirs = sorted(p for p in content_dir.iterdir() if (p / "ui.toml").exists()) if content_dir.exists() else []
    for locale_dir in locale_dirs:
        if locale_dir.name == FALLBACK_LOCALE:
            continue
        for instrument_id in sorted(english):
            path = locale_dir / "instruments" / f"{instrument_id}.toml"
            if not path.exists():
                problems.append(Problem(path, 1, Severity.WARNING, "no translation: the English items are used"))
    return found, sorted(problems)


def load_instruments(content_dir: Path, wanted: tuple[str, ...], *, allow_drafts: bool = False) -> InstrumentContent:
    """The instruments the bot asks (`[instruments] ask`); raises InstrumentContentError when one of
    them has no usable English file."""
    found, problems = check_instruments(content_dir, allow_drafts=allow_drafts)
    missing = [name for name in wanted if name not in found.get(FALLBACK_LOCALE, {})]
    if missing:
        errors = "\n".join(str(p) for p in problems if p.is_error and p.path.stem in missing)
        raise InstrumentContentError(
            f"[instruments] ask names {', '.join(missing)}, but content/{FALLBACK_LOCALE}/instruments/ has no usable "
            f"file for it{':' if errors else ''}\n{errors}".rstrip())
    return InstrumentContent(found, tuple(problems))
