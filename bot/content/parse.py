"""Reading one content file: TOML front matter, then a snippet's messages or an exercise's steps.

Every problem is reported with the file line it is on, and parsing goes on after a problem where
it can, so an author sees all mistakes of a file in one run.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from bot.content.model import (
    SLUG_RE,
    STARTER_TRACKS,
    Choice,
    ContentItem,
    ContentMeta,
    Exercise,
    Message,
    Snippet,
    Status,
    Step,
    StepKind,
    Topic,
)
from bot.content.problems import Problem, ProblemSink

FENCE = "+++"
MESSAGE_SEPARATOR = "---"
FORMAT_DOC = "content/FORMAT.md"

COMMON_KEYS = (
    "id",
    "title",
    "topic",
    "tracks",
    "week",
    "order",
    "tags",
    "reading_minutes",
    "author",
    "clinical_reviewer",
    "reviewed_on",
    "version",
    "status",
)
SNIPPET_KEYS = frozenset(COMMON_KEYS)
EXERCISE_KEYS = frozenset((*COMMON_KEYS, "continue_label"))

STEP_KEYS: dict[StepKind, frozenset[str]] = {
    StepKind.TEXT: frozenset({"next", "button"}),
    StepKind.PAUSE: frozenset({"seconds", "next", "button"}),
    StepKind.QUESTION: frozenset({"choices", "key", "next", "columns"}),
    StepKind.FREE_TEXT: frozenset({"key", "next", "button"}),
    StepKind.REFLECTION: frozenset(),
}
CHOICE_KEYS = frozenset({"label", "value", "next"})
MAX_PAUSE_SECONDS = 600  # a longer wait is better as a reminder than as an exercise step
MAX_COLUMNS = 4  # wider rows cut labels off on phones

_STEP_HEADING_RE = re.compile(r"^##\s+step:(.*)$")
_TOML_ERROR_LINE_RE = re.compile(r"at line (\d+)")
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


class ItemKind(StrEnum):
    SNIPPET = "psychoeducation"
    EXERCISE = "skills"


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _one_of(options: Iterable[str]) -> str:
    return ", ".join(options)


def _toml_error_line(error: tomllib.TOMLDecodeError, first_line: int) -> int:
    m = _TOML_ERROR_LINE_RE.search(str(error))
    return first_line + int(m.group(1)) - 1 if m else first_line


def _toml_error_text(error: tomllib.TOMLDecodeError) -> str:
    return re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(error))


E = TypeVar("E", bound=StrEnum)


@dataclass
class _Table:
    """A parsed TOML table and where its keys are in the file, for problem lines."""

    data: dict[str, Any]
    lines: list[str]
    first_line: int  # file line of lines[0]
    sink: ProblemSink
    where: str  # "front matter" or "step 'x'"
    anchor: int  # where a missing key is reported: the opening +++ line, or the step heading

    def line_of(self, key: str) -> int:
        """The file line where `key` is set, else the anchor."""
        key_re = re.compile(rf"(?:^|[{{,])\s*{re.escape(key)}\s*=")
        for i, text in enumerate(self.lines):
            if key_re.search(text):
                return self.first_line + i
        return self.anchor

    def unknown_keys(self, allowed: frozenset[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.sink.error(
                    self.line_of(key),
                    f"unknown key '{key}' in {self.where}{_suggest(key, allowed)}: "
                    f"the keys are {_one_of(sorted(allowed)) or '(none)'} (see {FORMAT_DOC})",
                )

    def text(self, key: str, *, required: bool, hint: str = "") -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.sink.error(
                    self.line_of(key), f"missing '{key}' in {self.where}: add {hint or key + ' = ...'}"
                )
            return None
        if not isinstance(value, str) or not value.strip():
            self.sink.error(
                self.line_of(key), f"'{key}' must be non-empty text in quotes, e.g. {hint or key + ' = ...'}"
            )
            return None
        return value.strip()

    def slug(self, key: str, *, required: bool, what: str) -> str | None:
        value = self.text(key, required=required, hint=f'{key} = "{what}"')
        if value is not None and not SLUG_RE.match(value):
            self.sink.error(
                self.line_of(key),
                f"'{key}' is '{value}': use only lowercase letters, digits, '-' and '_' (e.g. \"{what}\"), "
                "because it is stored and sent in button data",
            )
            return None
        return value

    def integer(self, key: str, low: int, high: int, *, required: bool = False) -> int | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.sink.error(
                    self.line_of(key), f"missing '{key}' in {self.where}: add {key} = <{low}-{high}>"
                )
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.sink.error(
                self.line_of(key),
                f"'{key}' is {value!r}: use a whole number from {low} to {high}, without quotes",
            )
            return None
        return value

    def enum(self, key: str, enum: type[E], *, required: bool = True) -> E | None:
        value = self.text(key, required=required, hint=f'{key} = "{next(iter(enum)).value}"')
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            options = [e.value for e in enum]
            self.sink.error(
                self.line_of(key),
                f"unknown {key} '{value}'{_suggest(value, options)}: use one of {_one_of(options)}",
            )
            return None

    def text_list(self, key: str, *, required: bool, example: str) -> list[str] | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.sink.error(self.line_of(key), f"missing '{key}' in {self.where}: add {key} = {example}")
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.sink.error(
                self.line_of(key), f"'{key}' must be a list of texts in quotes, e.g. {key} = {example}"
            )
            return None
        return [v.strip() for v in value]


def _read_text(path: Path, sink: ProblemSink) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        sink.error(1, f"cannot read the file ({exc.strerror}): check that it exists and is readable")
        return None
    try:
        text = raw.decode("utf-8-sig")  # tolerate the BOM some Windows editors write
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        sink.error(line, "the file is not UTF-8 text: save it as UTF-8 in your editor")
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_front_matter(lines: list[str], sink: ProblemSink) -> tuple[int, int] | None:
    """(index of opening fence, index of closing fence), or None after reporting why not."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        sink.error(
            1, f"the file is empty: start it with a {FENCE} line, the front matter and another {FENCE} line"
        )
        return None
    if lines[first].strip() == "---":
        sink.error(
            first + 1,
            f"front matter between '---' lines (YAML) is not used here: write it in TOML between "
            f"'{FENCE}' lines (see {FORMAT_DOC})",
        )
        return None
    if lines[first].strip() != FENCE:
        sink.error(
            first + 1,
            f"the file must start with a '{FENCE}' line that opens the front matter (see {FORMAT_DOC})",
        )
        return None
    for i in range(first + 1, len(lines)):
        if lines[i].strip() == FENCE:
            return first, i
    sink.error(
        first + 1, f"the front matter opened here is never closed: add a '{FENCE}' line after its last key"
    )
    return None


def _date(table: _Table, key: str, *, required: bool, severity_error: bool) -> date | None:
    value = table.data.get(key)
    report = table.sink.error if severity_error else table.sink.warning
    if value is None:
        if required:
            report(
                table.line_of(key),
                f"missing '{key}': add {key} = 2025-01-31 (the date of the clinical review, without quotes)",
            )
        return None
    if isinstance(value, datetime):
        table.sink.error(
            table.line_of(key), f"'{key}' has a time: write the date only, e.g. {key} = 2025-01-31"
        )
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    table.sink.error(
        table.line_of(key),
        f"'{key}' is {value!r}, not a date: write it as year-month-day, e.g. {key} = 2025-01-31",
    )
    return None


def _tracks(table: _Table, known: Collection[str] | None) -> tuple[str, ...] | None:
    """The `tracks` list (empty when absent: for every track), or None after an error. Names are
    checked against `known` (the program's tracks, or the starter ones) unless it is None."""
    names = table.text_list("tracks", required=False, example='["substance_use"]')
    if names is None:
        return None if "tracks" in table.data else ()
    if not names:
        table.sink.error(
            table.line_of("tracks"),
            'tracks is empty: leave the line out for every track, or name one, e.g. tracks = ["substance_use"]',
        )
        return None
    ok = True
    for name in names:
        if known is None:
            if not SLUG_RE.match(name):
                table.sink.error(
                    table.line_of("tracks"),
                    f"track '{name}': use only lowercase letters, digits, '-' and '_', as in config.toml",
                )
                ok = False
        elif name not in known:
            where = (
                "the program's tracks ([content] tracks in config.toml) are"
                if set(known) != set(STARTER_TRACKS)
                else "the tracks are (a program names its own in config.toml, [content] tracks)"
            )
            table.sink.error(
                table.line_of("tracks"),
                f"unknown track '{name}'{_suggest(name, known)}: {where} {_one_of(known)}",
            )
            ok = False
    return tuple(dict.fromkeys(names)) if ok else None


def _meta(
    table: _Table, path: Path, locale: str, kind: ItemKind, known_tracks: Collection[str] | None
) -> ContentMeta | None:
    table.unknown_keys(EXERCISE_KEYS if kind is ItemKind.EXERCISE else SNIPPET_KEYS)
    status = table.enum("status", Status)
    # A draft may still be waiting for its reviewer; a reviewed file must say who and when.
    needs_review_fields = status is not Status.DRAFT
    item_id = table.slug("id", required=True, what=path.stem)
    if item_id is not None and item_id != path.stem:
        table.sink.warning(
            table.line_of("id"),
            f"id '{item_id}' differs from the file name '{path.name}': name the file {item_id}.md",
        )
    title = table.text("title", required=True, hint='title = "A short title"')
    if title is not None and len(title) > 60:
        table.sink.warning(
            table.line_of("title"), f"the title has {len(title)} characters: menus cut it off after about 60"
        )
    topic = table.enum("topic", Topic)
    tracks = _tracks(table, known_tracks)
    author = table.text("author", required=True, hint='author = "Name, credentials"')
    reviewer_hint = 'clinical_reviewer = "Name, credentials" (every file names who reviewed it clinically)'
    if needs_review_fields:
        reviewer = table.text("clinical_reviewer", required=True, hint=reviewer_hint)
    else:
        reviewer = table.text("clinical_reviewer", required=False, hint=reviewer_hint)
        if "clinical_reviewer" not in table.data:
            table.sink.warning(
                table.line_of("status"),
                f"draft without a clinical reviewer: add {reviewer_hint} once reviewed",
            )
    reviewed_on = _date(table, "reviewed_on", required=True, severity_error=needs_review_fields)
    version = _version(table)
    week = table.integer("week", 1, 52)
    order = table.integer("order", 0, 9999)
    tags = table.text_list("tags", required=False, example='["sleep", "body"]') or []
    minutes = table.integer("reading_minutes", 1, 60)
    if (
        None in (item_id, title, topic, author, version, status)
        or tracks is None
        or (needs_review_fields and not reviewer)
    ):
        return None
    assert item_id and title and topic and author and version and status  # narrowed above, for mypy
    return ContentMeta(
        id=item_id,
        locale=locale,
        path=path,
        title=title,
        topic=topic,
        tracks=tracks,
        author=author,
        clinical_reviewer=reviewer or "",
        reviewed_on=reviewed_on,
        version=version,
        status=status,
        week=week,
        order=order,
        tags=tuple(tags),
        reading_minutes=minutes,
        id_line=table.line_of("id"),
    )


def _version(table: _Table) -> str | None:
    value = table.data.get("version")
    if value is None:
        table.sink.error(
            table.line_of("version"), "missing 'version': add version = 1 and raise it with every change"
        )
        return None
    if isinstance(value, bool) or not (
        (isinstance(value, int) and value >= 1)
        or (isinstance(value, str) and _VERSION_RE.match(value.strip()))
    ):
        table.sink.error(
            table.line_of("version"), f"'version' is {value!r}: use a number like 1, 2 or \"1.2\""
        )
        return None
    return str(value).strip()


# --- snippets -----------------------------------------------------------------------------------


def _snippet_messages(body: list[str], first_line: int, sink: ProblemSink) -> list[Message]:
    # Each chunk: the line it starts on (the separator above it, or the body's first line) and its lines.
    chunks: list[tuple[int, list[tuple[int, str]]]] = [(first_line, [])]
    for offset, line in enumerate(body):
        number = first_line + offset
        if line.strip() == MESSAGE_SEPARATOR:
            chunks.append((number, []))
        else:
            chunks[-1][1].append((number, line))
    if not any(t.strip() for _, chunk in chunks for _, t in chunk):
        sink.error(first_line, "the snippet has no text: write its message(s) after the front matter")
        return []
    messages: list[Message] = []
    for index, (start, chunk) in enumerate(chunks):
        content = [n for n, t in chunk if t.strip()]
        if not content:
            if index == 0:
                sink.error(chunks[1][0], f"the text starts with '{MESSAGE_SEPARATOR}': remove this line")
            elif index == len(chunks) - 1:
                sink.error(
                    start, f"the file ends with '{MESSAGE_SEPARATOR}': remove it or write a message after it"
                )
            else:
                sink.error(start, f"two '{MESSAGE_SEPARATOR}' lines with no message between them: remove one")
            continue
        text = "\n".join(t for n, t in chunk if content[0] <= n <= content[-1])
        messages.append(Message(text, content[0]))
    return messages


# --- exercises ----------------------------------------------------------------------------------


@dataclass
class _RawStep:
    id: str
    kind: StepKind
    line: int
    text: list[tuple[int, str]] = field(default_factory=list)
    settings: tuple[int, list[str]] | None = None  # (file line of first setting line, lines)


def _raw_steps(body: list[str], first_line: int, sink: ProblemSink) -> list[_RawStep]:
    steps: list[_RawStep] = []
    current: _RawStep | None = None
    stray_reported = False
    i = 0
    while i < len(body):
        number, line = first_line + i, body[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            info = stripped[3:].strip().lower()
            end = next((j for j in range(i + 1, len(body)) if body[j].strip().startswith("```")), None)
            if end is None:
                sink.error(number, "this ``` block is never closed: add a ``` line after its last setting")
                return steps
            if current is None:
                sink.error(
                    number, "settings before the first step: put them under a '## step: <id> <kind>' heading"
                )
            elif info != "toml":
                sink.error(
                    number,
                    "only ```toml blocks (step settings) are supported in exercises: open it with ```toml",
                )
            elif current.settings is not None:
                sink.error(
                    number,
                    f"step '{current.id}' has a second ```toml block: merge its settings into the first one",
                )
            else:
                current.settings = (number + 1, body[i + 1 : end])
            i = end + 1
            continue
        heading = _STEP_HEADING_RE.match(line)
        if heading:
            current = _step_heading(heading.group(1), number, sink)
            if current is not None:
                steps.append(current)
        elif line.startswith("## "):
            sink.error(
                number, "a '## ' heading in an exercise starts a step: write it as '## step: <id> <kind>'"
            )
        elif current is not None:
            current.text.append((number, line))
        elif stripped and not stray_reported:
            sink.error(number, "text before the first step: put it in a step, e.g. '## step: intro text'")
            stray_reported = True
        i += 1
    return steps


def _step_heading(rest: str, number: int, sink: ProblemSink) -> _RawStep | None:
    parts = rest.split()
    kinds = [k.value for k in StepKind]
    if len(parts) != 2:
        sink.error(number, f"a step heading is '## step: <id> <kind>' with kind one of {_one_of(kinds)}")
        return None
    step_id, kind_name = parts
    if not SLUG_RE.match(step_id):
        sink.error(
            number,
            f"step id '{step_id}': use only lowercase letters, digits, '-' and '_' (it goes in button data)",
        )
        return None
    try:
        kind = StepKind(kind_name)
    except ValueError:
        sink.error(
            number,
            f"unknown step kind '{kind_name}'{_suggest(kind_name, kinds)}: use one of {_one_of(kinds)}",
        )
        return None
    return _RawStep(step_id, kind, number)


def _step_text(raw: _RawStep, sink: ProblemSink) -> str:
    content = [(n, t) for n, t in raw.text if t.strip()]
    if not content:
        sink.error(
            raw.line, f"step '{raw.id}' has no text: write what the participant reads below its heading"
        )
        return ""
    start, end = content[0][0], content[-1][0]
    for n, t in raw.text:
        if start <= n <= end and t.strip() == MESSAGE_SEPARATOR:
            sink.error(
                n,
                f"'{MESSAGE_SEPARATOR}' does not split exercise steps (each step is one message): remove it",
            )
    return "\n".join(t for n, t in raw.text if start <= n <= end)


def _choices(table: _Table) -> tuple[Choice, ...]:
    value = table.data.get("choices")
    example = '[[choices]] with label = "Yes" and value = "yes"'
    if value is None:
        table.sink.error(
            table.line_of("choices"), f"{table.where} has no choices: add {example} to its ```toml block"
        )
        return ()
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        table.sink.error(table.line_of("choices"), f"'choices' must be a list of tables: write {example}")
        return ()
    out: list[Choice] = []
    value_re = re.compile(r"(?:^|[{,])\s*value\s*=")
    value_lines = [
        table.first_line + offset for offset, text in enumerate(table.lines) for _ in value_re.finditer(text)
    ]
    for index, raw in enumerate(value, start=1):
        label, val, nxt = raw.get("label"), raw.get("value"), raw.get("next")
        # The n-th `value =` in the block belongs to the n-th choice (tables or inline tables alike).
        line = value_lines[index - 1] if index <= len(value_lines) else table.line_of("choices")
        for key in raw:
            if key not in CHOICE_KEYS:
                table.sink.error(
                    line,
                    f"unknown key '{key}' in choice {index}{_suggest(key, CHOICE_KEYS)}: "
                    "use label, value and next",
                )
        if not isinstance(label, str) or not label.strip():
            table.sink.error(line, f'choice {index} has no label: add label = "What the button says"')
            continue
        if not isinstance(val, str) or not SLUG_RE.match(val):
            table.sink.error(
                line,
                f"choice {index} ('{label}') needs value = \"...\" with only lowercase letters, digits, "
                "'-' and '_': it is what gets stored, the same in every language",
            )
            continue
        if nxt is not None and not (isinstance(nxt, str) and SLUG_RE.match(nxt)):
            table.sink.error(line, f"choice '{val}': next must be a step id in quotes, e.g. next = \"close\"")
            nxt = None
        out.append(Choice(label.strip(), val, nxt, line))
    return tuple(out)


def _step(raw: _RawStep, exercise_sink: ProblemSink) -> Step:
    text = _step_text(raw, exercise_sink)
    first, lines = raw.settings if raw.settings else (raw.line, [])
    data: dict[str, Any] = {}
    if raw.settings:
        try:
            data = tomllib.loads("\n".join(lines))
        except tomllib.TOMLDecodeError as exc:
            exercise_sink.error(
                _toml_error_line(exc, first),
                f"step '{raw.id}' settings are not valid TOML ({_toml_error_text(exc)}): "
                "check quotes, '=' and brackets",
            )
    table = _Table(data, lines, first, exercise_sink, f"step '{raw.id}' ({raw.kind.value})", raw.line)
    if raw.kind is StepKind.REFLECTION:
        if data:
            exercise_sink.error(
                first,
                f"reflection step '{raw.id}' takes no settings: it closes the exercise (to go on after it, "
                "make it a text step)",
            )
        return Step(raw.id, raw.kind, text, raw.line)
    table.unknown_keys(STEP_KEYS[raw.kind])
    nxt = table.slug("next", required=False, what="close") if "next" in STEP_KEYS[raw.kind] else None
    seconds = (
        table.integer("seconds", 1, MAX_PAUSE_SECONDS, required=True) if raw.kind is StepKind.PAUSE else None
    )
    key = None
    if raw.kind is StepKind.FREE_TEXT:
        key = table.slug("key", required=True, what="situation")
    elif raw.kind is StepKind.QUESTION:
        key = table.slug("key", required=False, what="save_for_session")
    button = (
        table.text("button", required=False, hint='button = "Next"')
        if "button" in STEP_KEYS[raw.kind]
        else None
    )
    choices = _choices(table) if raw.kind is StepKind.QUESTION else ()
    columns = (table.integer("columns", 1, MAX_COLUMNS) or 1) if raw.kind is StepKind.QUESTION else 1
    return Step(raw.id, raw.kind, text, raw.line, nxt, seconds, key, button, choices, columns)


def _ref_line(raw: _RawStep, target: str) -> int:
    """The line of `next = "target"` in a step's settings (the heading if not found)."""
    if raw.settings:
        first, lines = raw.settings
        pattern = re.compile(rf"""(?:^|[{{,])\s*next\s*=\s*["']{re.escape(target)}["']""")
        for offset, text in enumerate(lines):
            if pattern.search(text):
                return first + offset
    return raw.line


def _check_flow(steps: list[Step], raws: list[_RawStep], exercise: Exercise, sink: ProblemSink) -> None:
    """Step ids, references, and that every step is reachable and can reach the end."""
    ids: dict[str, Step] = {}
    for step in steps:
        if step.id in ids:
            sink.error(
                step.line,
                f"step id '{step.id}' is used twice (first at line {ids[step.id].line}): rename one",
            )
        else:
            ids[step.id] = step
    broken = False
    for step, raw in zip(steps, raws, strict=True):
        for target in [step.next, *(c.next for c in step.choices)]:
            if target is not None and target not in ids:
                broken = True
                sink.error(
                    _ref_line(raw, target),
                    f"step '{step.id}' goes to step '{target}', which does not exist{_suggest(target, ids)}: "
                    f"use one of {_one_of(ids)}",
                )
        if step.kind is StepKind.QUESTION:
            values: set[str] = set()
            for c in step.choices:
                if c.value in values:
                    sink.error(
                        c.line, f"step '{step.id}' has two choices with value '{c.value}': give each its own"
                    )
                values.add(c.value)
            if len(step.choices) == 1:
                sink.warning(
                    step.line, f"question step '{step.id}' has one choice: add another or make it a text step"
                )
        if step.kind is StepKind.TEXT and not (step.button or exercise.continue_label):
            sink.error(
                step.line,
                f"text step '{step.id}' has no button label: add button = \"Next\" to its ```toml block, "
                'or continue_label = "Next" to the front matter for all text steps',
            )
    if broken or len(ids) != len(steps) or not steps:
        return  # the flow cannot be followed reliably until the references are fixed
    reachable = _walk([steps[0].id], lambda s: exercise.successors(ids[s]))
    for step in steps:
        if step.id not in reachable:
            sink.error(
                step.line,
                f"step '{step.id}' can never be reached: no step before it leads here (a reflection ends the "
                "exercise; check the next = ... of the steps before it)",
            )
    terminal = {s.id for s in steps if not exercise.successors(s)}
    predecessors: dict[str, set[str]] = {s.id: set() for s in steps}
    for step in steps:
        for succ in exercise.successors(step):
            predecessors[succ].add(step.id)
    can_finish = _walk(terminal, lambda s: predecessors[s])
    for step in steps:
        if step.id in reachable and step.id not in can_finish:
            sink.error(
                step.line, f"from step '{step.id}' the exercise can never end: it only loops; add a way out"
            )
    if not any(s.kind is StepKind.REFLECTION for s in steps):
        sink.warning(steps[-1].line, "no reflection step: close the exercise with '## step: <id> reflection'")


def _walk(start: Iterable[str], neighbours: Any) -> set[str]:
    seen = set(start)
    todo = list(seen)
    while todo:
        for nxt in neighbours(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# --- one file -----------------------------------------------------------------------------------


def parse_file(
    path: Path, locale: str, kind: ItemKind, *, known_tracks: Collection[str] | None = STARTER_TRACKS
) -> tuple[ContentItem | None, list[Problem]]:
    """Parse one file. Returns the item (None when an error makes it unusable) and its problems.

    `known_tracks`: the track names the front matter may use (the program's `[content] tracks`, or
    the starter ones while it names none); None accepts any well-formed name (previews)."""
    sink = ProblemSink(path)
    text = _read_text(path, sink)
    if text is None:
        return None, sink.problems
    lines = text.split("\n")
    fences = _split_front_matter(lines, sink)
    if fences is None:
        return None, sink.problems
    open_at, close_at = fences
    fm_lines = lines[open_at + 1 : close_at]
    try:
        data = tomllib.loads("\n".join(fm_lines))
    except tomllib.TOMLDecodeError as exc:
        sink.error(
            _toml_error_line(exc, open_at + 2),
            f"front matter is not valid TOML ({_toml_error_text(exc)}): text values need quotes, lists need "
            f"[brackets], dates are written 2025-01-31 (see {FORMAT_DOC})",
        )
        return None, sink.problems
    table = _Table(data, fm_lines, open_at + 2, sink, "front matter", open_at + 1)
    meta = _meta(table, path, locale, kind, known_tracks)
    body, body_first = lines[close_at + 1 :], close_at + 2
    if kind is ItemKind.SNIPPET:
        messages = _snippet_messages(body, body_first, sink)
        if meta is None or sink.has_errors:
            return None, sink.problems
        return Snippet(meta, tuple(messages)), sink.problems
    continue_label = table.text("continue_label", required=False, hint='continue_label = "Next"')
    raw_steps = _raw_steps(body, body_first, sink)
    if not raw_steps and not sink.has_errors:
        sink.error(body_first, "the exercise has no steps: add one, e.g. '## step: intro text'")
    steps = [_step(raw, sink) for raw in raw_steps]
    if meta is None:
        return None, sink.problems
    exercise = Exercise(meta, tuple(steps), continue_label)
    _check_flow(steps, raw_steps, exercise, sink)
    if sink.has_errors:
        return None, sink.problems
    return exercise, sink.problems
