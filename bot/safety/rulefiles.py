"""Reading and checking the clinician-editable safety rule files (`content/<locale>/safety/*.toml`).

Everything wrong in the files is collected and reported at once, each problem as `path:line:
message` with what to do, so a clinician can fix a file without reading Python. The format
itself is described in the header comment of every rule file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path

from bot.safety.levels import Category, Construct, Level


class SafetyRulesError(ValueError):
    """The safety rule files cannot be used; the message lists every problem as path:line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        heading = f"{count} problem{'s' if count != 1 else ''} in the safety rule files:"
        super().__init__("\n".join([heading, *(f"  {p}" for p in self.problems)]))


class GuardKind(StrEnum):
    """What a guard does to a risk phrase it applies to (see guards.toml)."""

    NEGATION = "negation"  # "i would never hurt myself": the risk phrase is cancelled
    IDIOM = "idiom"  # "dying to see you": overlapping risk phrases are cancelled
    OTHER_PERSON = "other_person"  # "my brother wants to die": concern, not urgent
    MEDIA = "media"  # "the character wanted to die": cancelled
    PAST = "past"  # "i used to cut", "200 days clean": concern, not urgent
    PRESENT = "present"  # "again", "still", "now": past and recovery guards do not apply
    SPEAKER = "speaker"  # "i", "me": the participant; stops negation/media/other-person guards


DEFAULT_WINDOW = {
    GuardKind.NEGATION: 3,
    GuardKind.IDIOM: 0,
    GuardKind.OTHER_PERSON: 4,
    GuardKind.MEDIA: 8,
    GuardKind.PAST: 6,
    GuardKind.PRESENT: 6,
    GuardKind.SPEAKER: 0,
}
MAX_WINDOW = 20

FILE_KEYS = {"category", "construct", "author", "reviewer", "reviewed", "notes"}
REQUIRED_FILE_KEYS = ("author", "reviewer", "reviewed")
RULE_KEYS = {"id", "level", "category", "construct", "detail", "phrases", "patterns", "raises", "notes"}
GUARD_KEYS = {"id", "kind", "window", "categories", "phrases", "patterns", "through", "notes"}
_DETAIL = re.compile(r"[a-z0-9_ ]{1,30}")
TOP_LEVEL = {"file", "words", "rule", "guard", "construct"}
# [[construct]]: word classes that together make a clinical construct, in any order, in one clause.
CONSTRUCT_KEYS = {
    "id", "level", "category", "construct", "detail", "all", "window", "unless", "raises", "notes", "first_person",
    "sentences",
}
DEFAULT_CONSTRUCT_WINDOW = 8
MAX_CONSTRUCT_PARTS = 4
_WORD_LIST = re.compile(r"[a-z][a-z0-9_]*")
WORD_LIST_USE = re.compile(r"\{([^{}]*)\}")
_ID = re.compile(r"[a-z0-9_]+")
# A rule that names no construct (here or in [file]) gets its category's most common one.
CATEGORY_CONSTRUCT = {
    Category.SUICIDE: Construct.ACTIVE_IDEATION,
    Category.SELF_HARM: Construct.SELF_INJURY,
    Category.HARM_TO_OTHERS: Construct.HARM_TO_OTHERS,
    Category.OVERDOSE_RELAPSE: Construct.SUBSTANCE_DANGER,
    Category.ABUSE_UNSAFE: Construct.UNSAFE_AT_HOME,
    Category.MEDICAL: Construct.MEDICAL,
}


@dataclass(frozen=True)
class RuleSpec:
    """One [[rule]] as written in a file, checked but not yet compiled."""

    id: str
    category: Category
    construct: Construct
    detail: str  # e.g. "medication" for construct means: shown to the clinician as "means: medication"
    level: Level
    raises: Level | None
    phrases: tuple[str, ...]
    patterns: tuple[str, ...]
    notes: str
    where: str  # "path:line" of the [[rule]] header
    lines: TomlLines = field(repr=False, compare=False)
    index: int = 0  # the how-many-th [[rule]] in its file
    # [[construct]] only: one phrase from each part, in any order, within `window` words of one
    # clause; `unless`: phrases that, in the same clause near the match, mean it is not this construct.
    parts: tuple[tuple[str, ...], ...] = ()
    window: int = 0
    unless: tuple[str, ...] = ()
    # The construct's own words say it is the participant ("without me", "if i was gone"): the
    # other-person guard does not lower it ("my kids would be better off without me").
    first_person: bool = False
    # The parts may stand in different sentences of the message (still within `window` words):
    # "you were the only ones who got it. goodbye".
    sentences: bool = False

    @property
    def table(self) -> str:
        return "construct" if self.parts else "rule"


@dataclass(frozen=True)
class GuardSpec:
    """One [[guard]] as written in a file."""

    id: str
    kind: GuardKind
    window: int
    categories: frozenset[Category]  # the rule categories it applies to
    phrases: tuple[str, ...]
    patterns: tuple[str, ...]
    notes: str
    # Negation only: the words that may stand between the negation and the risk phrase and keep it
    # in scope ("i do NOT have ANY THOUGHTS OF hurting myself"). Any other word starts another
    # clause ("ya no aguanto mas quiero morirme"): the negation does not reach the risk.
    through: frozenset[str]
    where: str
    lines: TomlLines = field(repr=False, compare=False)
    index: int = 0


@dataclass
class RuleFile:
    path: Path
    locale: str
    rules: list[RuleSpec]
    guards: list[GuardSpec]
    # [words]: named lists of words any phrase of the locale may use as {name}, e.g.
    # medication = ["pills", "meds", "sertraline", ...]; the phrase "took all my {medication}".
    words: dict[str, tuple[str, ...]] = field(default_factory=dict)


class TomlLines:
    """Finds the line of a table, key or value in TOML text (tomllib reports no line numbers)."""

    _ARRAY_TABLE = re.compile(r"\[\[\s*([\w.-]+)\s*\]\]")
    _TABLE = re.compile(r"\[\s*([\w.-]+)\s*\]")
    _KEY = re.compile(r"""([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*=""")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._headers: dict[tuple[str | None, int], int] = {}
        self._keys: dict[tuple[str | None, int, str], int] = {}
        self._ends: dict[tuple[str | None, int], int] = {}
        counts: dict[str, int] = {}
        table: tuple[str | None, int] = (None, 0)
        in_multiline = False
        for number, raw in enumerate(self._lines, 1):
            line = raw.strip()
            # skip the inside of multi-line strings, which may contain "x = y" or "[x]"
            quotes = line.count('"""') + line.count("'''")
            if in_multiline:
                in_multiline = quotes % 2 == 0
                continue
            if quotes % 2 == 1:
                in_multiline = True
            if match := self._ARRAY_TABLE.match(line):
                name = match.group(1)
                counts[name] = counts.get(name, -1) + 1
                self._ends[table] = number - 1
                table = (name, counts[name])
                self._headers[table] = number
            elif match := self._TABLE.match(line):
                self._ends[table] = number - 1
                table = (match.group(1), 0)
                self._headers[table] = number
            elif match := self._KEY.match(line):
                key = match.group(1).strip("\"'")
                self._keys.setdefault((table[0], table[1], key), number)
        self._ends[table] = len(self._lines)

    def line(self, table: str | None = None, index: int = 0, key: str | None = None, value: str | None = None) -> int:
        """The line of [table] number `index`, of its `key`, or of `value` inside that key."""
        start = self._headers.get((table, index), 1) if table else 1
        if key is None:
            return start
        key_line = self._keys.get((table, index, key))
        if key_line is None:
            return start
        if value is None:
            return key_line
        end = self._ends.get((table, index), len(self._lines))
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        for number in range(key_line, end + 1):
            text = self._lines[number - 1]
            if value in text or escaped in text:
                return number
        return key_line


def read_rule_file(path: Path, locale: str, problems: list[str]) -> RuleFile | None:
    """Parse and check one file; append every problem found to `problems`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{path}:1: cannot read the file ({error}); save it as UTF-8 text")
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"line (\d+)", str(error))
        line = found.group(1) if found else "1"
        problems.append(
            f"{path}:{line}: TOML syntax error: {error}; check quotes, commas and brackets on this "
            "line or the line above"
        )
        return None
    lines = TomlLines(text)
    checker = _Checker(path, lines, problems)
    for key in data:
        if key not in TOP_LEVEL:
            where = lines.line(key) if isinstance(data[key], dict | list) else lines.line(None, 0, key)
            checker.problem(
                where,
                f"unknown section or key '{key}'; a rule file has [file], [words], [[rule]], [[construct]] and "
                "[[guard]] only",
            )
    file_table = data.get("file")
    default_category: Category | None = None
    default_construct: Construct | None = None
    if not isinstance(file_table, dict):
        checker.problem(1, "missing [file] table; add [file] with author, reviewer and reviewed")
    else:
        default_category = checker.check_file_table(file_table)
        if "construct" in file_table:
            default_construct = checker.construct(file_table["construct"], lines.line("file", 0, "construct"))
    rules = [
        spec
        for index, table in enumerate(checker.table_list(data, "rule"))
        if (spec := checker.check_rule(table, index, default_category, default_construct)) is not None
    ]
    rules += [
        spec
        for index, table in enumerate(checker.table_list(data, "construct"))
        if (spec := checker.check_construct(table, index, default_category, default_construct)) is not None
    ]
    guards = [
        guard
        for index, table in enumerate(checker.table_list(data, "guard"))
        if (guard := checker.check_guard(table, index)) is not None
    ]
    words: dict[str, tuple[str, ...]] = {}
    table = data.get("words", {})
    if not isinstance(table, dict):
        checker.problem(lines.line("words"), "[words] must be a table of named lists: name = [\"word\", ...]")
    else:
        for name, value in table.items():
            line = lines.line("words", 0, name)
            if not _WORD_LIST.fullmatch(name):
                checker.problem(line, f"word list name {name!r}: use lowercase letters, digits and _")
            elif not isinstance(value, list) or not value or not all(isinstance(w, str) and w.strip() for w in value):
                checker.problem(line, f"word list {name!r} must be a non-empty list of words or phrases")
            elif any(ch in w for w in value for ch in "()[]|{}"):
                checker.problem(line, f"word list {name!r}: write plain words or phrases, without brackets or |")
            else:
                words[name] = tuple(w.strip() for w in value)
    return RuleFile(path, locale, rules, guards, words)


class _Checker:
    """Checks the tables of one file, turning each problem into `path:line: message`."""

    def __init__(self, path: Path, lines: TomlLines, problems: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.problems = problems

    def problem(self, line: int, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {message}")

    def table_list(self, data: dict[str, object], name: str) -> list[dict[str, object]]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem(self.lines.line(name), f"'{name}' must be written as [[{name}]] tables")
            return []
        return value

    def check_file_table(self, table: dict[str, object]) -> Category | None:
        line = self.lines.line("file")
        for key in table:
            if key not in FILE_KEYS:
                self.problem(
                    self.lines.line("file", 0, key),
                    f"unknown key '{key}' in [file]; allowed: {', '.join(sorted(FILE_KEYS))}",
                )
        for key in REQUIRED_FILE_KEYS:
            value = table.get(key)
            if not isinstance(value, str | date) or (isinstance(value, str) and not value.strip()):
                self.problem(
                    line,
                    f"[file] needs '{key}' (who wrote the file, who reviewed it clinically, and when; "
                    'write "pending" until it is reviewed)',
                )
        if "category" in table:
            return self._category(table["category"], self.lines.line("file", 0, "category"))
        return None

    def _category(self, value: object, line: int) -> Category | None:
        try:
            return Category(str(value).strip())
        except ValueError:
            valid = ", ".join(c.value for c in Category)
            self.problem(line, f"unknown category {value!r}; use one of: {valid}")
            return None

    def construct(self, value: object, line: int) -> Construct | None:
        try:
            return Construct(str(value).strip())
        except ValueError:
            valid = ", ".join(c.value for c in Construct)
            self.problem(line, f"unknown construct {value!r}; use one of: {valid}")
            return None

    def _level(self, value: object, line: int, allowed: tuple[Level, ...], what: str) -> Level | None:
        names = ", ".join(level.label for level in allowed)
        try:
            level = Level.parse(str(value))
        except ValueError:
            self.problem(line, f"unknown {what} {value!r}; use one of: {names}")
            return None
        if level not in allowed:
            self.problem(line, f"{what} {value!r} is not allowed here; use one of: {names}")
            return None
        return level

    def _strings(self, table: dict[str, object], key: str, line: int) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(line, f'\'{key}\' must be a list of quoted strings, e.g. {key} = ["...", "..."]')
            return ()
        return tuple(value)

    def _id(self, table: dict[str, object], name: str, index: int) -> str | None:
        value = table.get("id")
        line = self.lines.line(name, index, "id")
        if not isinstance(value, str) or not _ID.fullmatch(value):
            self.problem(line, f"[[{name}]] needs an id of lowercase letters, digits and '_' (got {value!r})")
            return None
        return value

    def _unknown_keys(self, table: dict[str, object], name: str, index: int, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                self.problem(
                    self.lines.line(name, index, key),
                    f"unknown key '{key}' in [[{name}]]; allowed: {', '.join(sorted(allowed))}",
                )

    def check_rule(
        self, table: dict[str, object], index: int, default: Category | None, default_construct: Construct | None,
        kind: str = "rule",
    ) -> RuleSpec | None:
        header = self.lines.line(kind, index)
        problems_before = len(self.problems)
        self._unknown_keys(table, kind, index, RULE_KEYS if kind == "rule" else CONSTRUCT_KEYS)
        rule_id = self._id(table, kind, index)
        category = default
        if "category" in table:
            category = self._category(table["category"], self.lines.line(kind, index, "category"))
        elif default is None:
            self.problem(header, 'the rule has no category; add category = "..." here or in [file]')
        construct = default_construct
        if "construct" in table:
            construct = self.construct(table["construct"], self.lines.line(kind, index, "construct"))
        elif construct is None and category is not None:
            construct = CATEGORY_CONSTRUCT[category]
        detail = str(table.get("detail", "")).strip()
        if detail and not _DETAIL.fullmatch(detail):
            self.problem(self.lines.line(kind, index, "detail"),
                         f"detail {detail!r} must be a few lowercase words (a-z, 0-9, spaces; up to 30 characters)")
        raises: Level | None = None
        if "raises" in table:
            raises = self._level(
                table["raises"],
                self.lines.line(kind, index, "raises"),
                (Level.CONCERN, Level.URGENT),
                "raises",
            )
        allowed = (Level.NONE, Level.CONCERN, Level.URGENT, Level.IMMINENT) if "raises" in table else (
            Level.CONCERN, Level.URGENT, Level.IMMINENT)  # fmt: skip
        level: Level | None = None
        if "level" not in table:
            self.problem(header, 'the rule has no level; add level = "concern", "urgent" or "imminent"')
        else:
            level = self._level(table["level"], self.lines.line(kind, index, "level"), allowed, "level")
            if level is None and str(table["level"]).strip().lower() == "none":
                self.problems[-1] += " (level \"none\" is only for markers, i.e. rules with 'raises')"
        phrases: tuple[str, ...] = ()
        patterns: tuple[str, ...] = ()
        if kind == "rule":
            phrases = self._strings(table, "phrases", self.lines.line(kind, index, "phrases"))
            patterns = self._strings(table, "patterns", self.lines.line(kind, index, "patterns"))
            if not phrases and not patterns:
                self.problem(header, 'the rule has no phrases and no patterns; add phrases = ["..."]')
        notes = table.get("notes", "")
        if (len(self.problems) > problems_before or rule_id is None or category is None or level is None
                or construct is None):
            return None
        return RuleSpec(
            id=rule_id,
            category=category,
            construct=construct,
            detail=detail,
            level=level,
            raises=raises,
            phrases=phrases,
            patterns=patterns,
            notes=str(notes),
            where=f"{self.path}:{header}",
            lines=self.lines,
            index=index,
        )

    def check_construct(
        self, table: dict[str, object], index: int, default: Category | None, default_construct: Construct | None
    ) -> RuleSpec | None:
        """A [[construct]]: `all = [[...], [...]]`, one phrase of each part, any order, one clause."""
        problems_before = len(self.problems)
        spec = self.check_rule(table, index, default, default_construct, "construct")
        line = self.lines.line("construct", index, "all")
        parts_value = table.get("all")
        parts: list[tuple[str, ...]] = []
        if (not isinstance(parts_value, list) or not 2 <= len(parts_value) <= MAX_CONSTRUCT_PARTS
                or not all(isinstance(p, list) and p and all(isinstance(w, str) and w.strip() for w in p)
                           for p in parts_value)):
            self.problem(line, f"'all' must be a list of 2 to {MAX_CONSTRUCT_PARTS} parts, each a non-empty list "
                               'of phrases: all = [["{acquire}"], ["{means}"]]')
        else:
            parts = [tuple(w.strip() for w in p) for p in parts_value]
        window = table.get("window", DEFAULT_CONSTRUCT_WINDOW)
        if not isinstance(window, int) or isinstance(window, bool) or not 2 <= window <= MAX_WINDOW:
            self.problem(self.lines.line("construct", index, "window"),
                         f"window must be a whole number of words from 2 to {MAX_WINDOW} (got {window!r})")
        unless = self._strings(table, "unless", self.lines.line("construct", index, "unless"))
        first_person = table.get("first_person", False)
        sentences = table.get("sentences", False)
        for key, value in (("first_person", first_person), ("sentences", sentences)):
            if not isinstance(value, bool):
                self.problem(self.lines.line("construct", index, key), f"{key} must be true or false")
        if spec is None or len(self.problems) > problems_before:
            return None
        size = window if isinstance(window, int) else DEFAULT_CONSTRUCT_WINDOW  # checked above
        return replace(spec, parts=tuple(parts), window=size, unless=unless, first_person=first_person is True,
                       sentences=sentences is True)

    def check_guard(self, table: dict[str, object], index: int) -> GuardSpec | None:
        header = self.lines.line("guard", index)
        problems_before = len(self.problems)
        self._unknown_keys(table, "guard", index, GUARD_KEYS)
        guard_id = self._id(table, "guard", index)
        kind: GuardKind | None = None
        try:
            kind = GuardKind(str(table.get("kind", "")).strip())
        except ValueError:
            valid = ", ".join(k.value for k in GuardKind)
            self.problem(
                self.lines.line("guard", index, "kind"),
                f"unknown guard kind {table.get('kind')!r}; use one of: {valid}",
            )
        window = table.get("window", DEFAULT_WINDOW.get(kind, 0) if kind else 0)
        if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= MAX_WINDOW:
            self.problem(
                self.lines.line("guard", index, "window"),
                f"window must be a whole number of words from 0 to {MAX_WINDOW} (got {window!r})",
            )
        categories = frozenset(Category)
        if "categories" in table:
            line = self.lines.line("guard", index, "categories")
            names = self._strings(table, "categories", line)
            found = [self._category(name, line) for name in names]
            categories = frozenset(c for c in found if c is not None)
        phrases = self._strings(table, "phrases", self.lines.line("guard", index, "phrases"))
        patterns = self._strings(table, "patterns", self.lines.line("guard", index, "patterns"))
        if not phrases and not patterns:
            self.problem(header, 'the guard has no phrases and no patterns; add phrases = ["..."]')
        through = self._strings(table, "through", self.lines.line("guard", index, "through"))
        if through and kind != GuardKind.NEGATION:
            self.problem(self.lines.line("guard", index, "through"), "'through' is only for negation guards")
        if len(self.problems) > problems_before or guard_id is None or kind is None:
            return None
        return GuardSpec(
            id=guard_id,
            kind=kind,
            window=window if isinstance(window, int) else 0,  # checked above
            categories=categories,
            phrases=phrases,
            patterns=patterns,
            notes=str(table.get("notes", "")),
            through=frozenset(word.strip().casefold() for word in through),
            where=f"{self.path}:{header}",
            lines=self.lines,
            index=index,
        )
