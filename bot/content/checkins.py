"""Check-in questionnaires: `content/<locale>/checkins/<name>.toml`, loaded and checked.

Every problem is reported as `file:line: severity: message`, like the rest of the content
library. A translation must ask the same questions (same ids, kinds, ranges and choice values)
as the English file, so that answers mean the same thing in every language; only the words
differ. `python -m bot.content.checkins [DIR]` prints every problem.

The format is described in content/FORMAT.md, "Check-ins".
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.content.problems import Problem, ProblemSink, Severity, read_toml

FALLBACK_LOCALE = "en"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
MAX_ID_CHARS = 24  # ids and values travel in button data: fl:<run>:<question>:<value>, 64 bytes at most
MAX_VALUE_CHARS = 20
MAX_LABEL_CHARS = 40
MAX_TEXT_CHARS = 1000
# The answer the safety question must offer; "yes" is a structured trigger (CLINICAL.md).
SAFETY_QUESTION = "safety"

_TOP_KEYS = frozenset({"id", "title", "author", "clinical_reviewer", "reviewed_on", "version", "status", "intro",
                       "done", "questions"})
_QUESTION_KEYS = frozenset({"id", "kind", "text", "hint", "min", "max", "choices", "buttons", "optional",
                            "columns"})


class QuestionKind(StrEnum):
    SCALE = "scale"  # whole numbers min..max as buttons (mood 0-10)
    CHOICE = "choice"  # a few labelled buttons; the value is stored
    NUMBER = "number"  # a number typed (or tapped from `buttons`) between min and max (sleep hours)
    FREE_TEXT = "free_text"  # a line the participant types


class CheckinContentError(Exception):
    """The check-in questions cannot be used; the message lists every problem with file:line."""


@dataclass(frozen=True)
class Choice:
    label: str
    value: str


@dataclass(frozen=True)
class Question:
    id: str
    kind: QuestionKind
    text: str
    line: int
    hint: str = ""
    low: float | None = None  # scale and number
    high: float | None = None
    choices: tuple[Choice, ...] = ()  # choice (and the generated buttons of a scale)
    buttons: tuple[str, ...] = ()  # number: quick answers
    optional: bool = False  # a Skip button; the safety question may never be optional
    columns: int = 0  # buttons per row; 0 = a sensible default for the kind

    @property
    def numeric(self) -> bool:
        return self.kind in (QuestionKind.SCALE, QuestionKind.NUMBER)

    def parse_number(self, text: str) -> float | None:
        """A typed number within range ('6', '6.5', '6,5', '7 hours'), else None."""
        match = re.search(r"-?\d+(?:[.,]\d+)?", text or "")
        if not match:
            return None
        value = float(match.group().replace(",", "."))
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return None
        if self.kind is QuestionKind.SCALE and value != int(value):
            return None
        return value


@dataclass(frozen=True)
class Questionnaire:
    id: str
    locale: str
    path: Path
    title: str
    intro: str
    done: str
    version: str
    status: str
    questions: tuple[Question, ...]

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def after(self, question_id: str) -> str | None:
        ids = [q.id for q in self.questions]
        index = ids.index(question_id)
        return ids[index + 1] if index + 1 < len(ids) else None


class _Lines:
    """Where keys are in the file, for problem lines (tomllib does not say)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.question_starts = [i + 1 for i, line in enumerate(self.lines) if line.strip() == "[[questions]]"]

    def _block(self, question: int | None) -> tuple[int, int]:
        if question is None:
            end = self.question_starts[0] - 1 if self.question_starts else len(self.lines)
            return 1, end
        if question >= len(self.question_starts):
            return 1, len(self.lines)
        start = self.question_starts[question]
        end = self.question_starts[question + 1] - 1 if question + 1 < len(self.question_starts) else len(self.lines)
        return start, end

    def key(self, key: str, question: int | None = None) -> int:
        start, end = self._block(question)
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, end + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return start

    def value(self, value: str, question: int, fallback_key: str) -> int:
        start, end = self._block(question)
        for number in range(start, end + 1):
            if f'"{value}"' in self.lines[number - 1] and "value" in self.lines[number - 1]:
                return number
        return self.key(fallback_key, question)


def _text(table: dict[str, Any], key: str, sink: ProblemSink, line: int, where: str, *, required: bool = True,
          limit: int = MAX_TEXT_CHARS) -> str:
    value = table.get(key)
    if value is None:
        if required:
            sink.error(line, f"missing '{key}' in {where}: add {key} = \"...\"")
        return ""
    if not isinstance(value, str) or not value.strip():
        sink.error(line, f"'{key}' must be non-empty text in quotes")
        return ""
    if len(value) > limit:
        sink.error(line, f"'{key}' has {len(value)} characters; keep it under {limit}")
    return value.strip()


def _number(table: dict[str, Any], key: str, sink: ProblemSink, line: int, *, whole: bool) -> float | None:
    value = table.get(key)
    if value is None:
        sink.error(line, f"missing '{key}': add {key} = <number>")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
        sink.error(line, f"'{key}' must be a {'whole ' if whole else ''}number without quotes, not {value!r}")
        return None
    return float(value)


def _question(raw: Any, index: int, lines: _Lines, sink: ProblemSink) -> Question | None:
    anchor = lines.question_starts[index] if index < len(lines.question_starts) else 1
    if not isinstance(raw, dict):
        sink.error(anchor, "each [[questions]] entry must be a table of keys")
        return None
    for key in sorted(set(raw) - _QUESTION_KEYS):
        sink.error(lines.key(key, index), f"unknown key '{key}' in a question; known keys: "
                   f"{', '.join(sorted(_QUESTION_KEYS))}")
    qid = raw.get("id")
    where = f"question {index + 1}"
    if not isinstance(qid, str) or not SLUG_RE.match(qid) or len(qid) > MAX_ID_CHARS:
        sink.error(lines.key("id", index), f"{where}: 'id' must be lowercase letters, digits and _ "
                   f"(at most {MAX_ID_CHARS}), like id = \"sleep_hours\"")
        return None
    where = f"question '{qid}'"
    try:
        kind = QuestionKind(raw.get("kind", ""))
    except ValueError:
        sink.error(lines.key("kind", index), f"{where}: 'kind' must be one of "
                   f"{', '.join(k.value for k in QuestionKind)}, not {raw.get('kind')!r}")
        return None
    text = _text(raw, "text", sink, lines.key("text", index), where)
    hint = _text(raw, "hint", sink, lines.key("hint", index), where, required=False)
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        sink.error(lines.key("optional", index), f"{where}: 'optional' must be true or false")
        optional = False
    columns = raw.get("columns", 0)
    if isinstance(columns, bool) or not isinstance(columns, int) or not 0 <= columns <= 8:
        sink.error(lines.key("columns", index), f"{where}: 'columns' must be a whole number from 1 to 8")
        columns = 0
    low = high = None
    choices: list[Choice] = []
    buttons: tuple[str, ...] = ()
    if kind in (QuestionKind.SCALE, QuestionKind.NUMBER):
        whole = kind is QuestionKind.SCALE
        low = _number(raw, "min", sink, lines.key("min", index), whole=whole)
        high = _number(raw, "max", sink, lines.key("max", index), whole=whole)
        if low is not None and high is not None:
            if low >= high:
                sink.error(lines.key("max", index), f"{where}: 'max' must be greater than 'min'")
            elif whole and high - low > 20:
                sink.error(lines.key("max", index), f"{where}: a scale has at most 21 buttons; use kind = \"number\"")
        if whole and low is not None and high is not None and low < high:
            choices = [Choice(str(v), str(v)) for v in range(int(low), int(high) + 1)]
    if kind is QuestionKind.NUMBER and "buttons" in raw:
        given = raw["buttons"]
        line = lines.key("buttons", index)
        if not isinstance(given, list) or not all(isinstance(b, str) for b in given):
            sink.error(line, f"{where}: 'buttons' must be a list of numbers in quotes, like [\"6\", \"7\", \"8\"]")
        else:
            for b in given:
                try:
                    number = float(b)
                except ValueError:
                    sink.error(line, f"{where}: button {b!r} is not a number")
                    continue
                if low is not None and high is not None and not low <= number <= high:
                    sink.error(line, f"{where}: button {b!r} is outside min..max")
            buttons = tuple(given)
    if kind is QuestionKind.CHOICE:
        line = lines.key("choices", index)
        given = raw.get("choices")
        if not isinstance(given, list) or len(given) < 2:
            sink.error(line, f"{where}: 'choices' must list at least two, like "
                       "choices = [{ value = \"yes\", label = \"Yes\" }, { value = \"no\", label = \"No\" }]")
        else:
            for choice in given:
                if not isinstance(choice, dict) or set(choice) != {"value", "label"}:
                    sink.error(line, f"{where}: each choice needs exactly a value and a label, "
                               "like { value = \"yes\", label = \"Yes\" }")
                    continue
                value, label = choice["value"], choice["label"]
                vline = lines.value(str(value), index, "choices")
                if not isinstance(value, str) or not SLUG_RE.match(value) or len(value) > MAX_VALUE_CHARS:
                    sink.error(vline, f"{where}: choice value {value!r} must be lowercase letters, digits and _ "
                               f"(at most {MAX_VALUE_CHARS})")
                    continue
                if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
                    sink.error(vline, f"{where}: the label of choice {value!r} must be text of 1 to "
                               f"{MAX_LABEL_CHARS} characters")
                    continue
                if any(c.value == value for c in choices):
                    sink.error(vline, f"{where}: choice value {value!r} is used twice")
                    continue
                choices.append(Choice(label.strip(), value))
    elif "choices" in raw:
        sink.error(lines.key("choices", index), f"{where}: 'choices' is only for kind = \"choice\"")
    if sink.has_errors:
        return None
    return Question(qid, kind, text, anchor, hint, low, high, tuple(choices), buttons, optional, columns)


def parse_questionnaire(path: Path, locale: str) -> tuple[Questionnaire | None, list[Problem]]:
    """Read one questionnaire file; None when it has errors (every problem is returned)."""
    sink = ProblemSink(path)
    read = read_toml(sink)
    if read is None:
        return None, sink.problems
    text, data = read
    lines = _Lines(text)
    for key in sorted(set(data) - _TOP_KEYS):
        sink.error(lines.key(key), f"unknown key '{key}'; known keys: {', '.join(sorted(_TOP_KEYS))}")
    qid = data.get("id")
    if qid != path.stem:
        sink.error(lines.key("id"), f"'id' must be the file name without .toml: id = \"{path.stem}\"")
    title = _text(data, "title", sink, lines.key("title"), "the file", limit=60)
    intro = _text(data, "intro", sink, lines.key("intro"), "the file")
    done = _text(data, "done", sink, lines.key("done"), "the file")
    _text(data, "author", sink, lines.key("author"), "the file", limit=200)
    status = data.get("status")
    if status not in ("draft", "reviewed"):
        sink.error(lines.key("status"), f"'status' must be \"draft\" or \"reviewed\", not {status!r}")
    if status == "reviewed":
        _text(data, "clinical_reviewer", sink, lines.key("clinical_reviewer"), "a reviewed file", limit=200)
        if not isinstance(data.get("reviewed_on"), date):
            sink.error(lines.key("reviewed_on"), "a reviewed file needs reviewed_on = <date>, like 2026-11-25")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int | str):
        sink.error(lines.key("version"), "missing 'version': add version = 1 and raise it with every change")
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        sink.error(1, "no questions: add at least one [[questions]] table")
        return None, sink.problems
    questions: list[Question] = []
    for index, raw in enumerate(raw_questions):
        question_sink = ProblemSink(path)
        question = _question(raw, index, lines, question_sink)
        sink.problems.extend(question_sink.problems)
        if question is None:
            continue
        if any(q.id == question.id for q in questions):
            sink.error(lines.key("id", index), f"question id '{question.id}' is used twice")
            continue
        questions.append(question)
    if path.stem == "daily" and not sink.has_errors:
        _check_daily(questions, lines, sink)
    if sink.has_errors:
        return None, sink.problems
    return Questionnaire(path.stem, locale, path, title, intro, done, str(version), str(status),
                         tuple(questions)), sink.problems


def _check_daily(questions: list[Question], lines: _Lines, sink: ProblemSink) -> None:
    """The daily check-in carries the clinical triggers: its safety question must be there."""
    safety = next((q for q in questions if q.id == SAFETY_QUESTION), None)
    if safety is None:
        sink.error(1, f"the daily check-in must ask the safety question: add a question with "
                   f"id = \"{SAFETY_QUESTION}\", kind = \"choice\" and the choices \"yes\" and \"no\"")
        return
    index = questions.index(safety)
    if safety.kind is not QuestionKind.CHOICE or {c.value for c in safety.choices} < {"yes", "no"}:
        sink.error(lines.key("kind", index), "the safety question must be kind = \"choice\" with the values "
                   "\"yes\" and \"no\" (\"yes\" alerts the care team)")
    if safety.optional:
        sink.error(lines.key("optional", index), "the safety question cannot be optional")
    for expected in ("mood", "craving"):
        q = next((q for q in questions if q.id == expected), None)
        if q is None or q.kind is not QuestionKind.SCALE:
            sink.warning(1, f"no '{expected}' scale question: mood and craving trends and thresholds need one")


def _same_questions(english: Questionnaire, other: Questionnaire, sink: ProblemSink) -> None:
    lines = _Lines(other.path.read_text(encoding="utf-8"))
    if [q.id for q in other.questions] != [q.id for q in english.questions]:
        sink.error(1, f"asks {[q.id for q in other.questions]} but English asks {[q.id for q in english.questions]}: "
                   "a translation must ask the same questions in the same order")
        return
    for index, (en, q) in enumerate(zip(english.questions, other.questions, strict=True)):
        if (q.kind, q.low, q.high, q.optional) != (en.kind, en.low, en.high, en.optional):
            sink.error(q.line, f"question '{q.id}' differs from English in kind, min, max or optional")
        if [c.value for c in q.choices] != [c.value for c in en.choices] or q.buttons != en.buttons:
            sink.error(lines.key("choices" if q.kind is QuestionKind.CHOICE else "buttons", index),
                       f"question '{q.id}' must offer the same values as English "
                       f"({', '.join(c.value for c in en.choices) or ', '.join(en.buttons)}); translate only labels")


@dataclass(frozen=True)
class CheckinContent:
    """The questionnaires of one name (e.g. "daily") in every locale, English as the fallback."""

    by_locale: dict[str, Questionnaire]
    problems: tuple[Problem, ...] = ()

    def get(self, locale: str) -> Questionnaire:
        return self.by_locale.get(locale) or self.by_locale.get(locale.split("-")[0]) or self.by_locale[FALLBACK_LOCALE]


def check_questionnaires(content_dir: Path, name: str = "daily", *, allow_drafts: bool = False
                         ) -> tuple[dict[str, Questionnaire], list[Problem]]:
    """Every locale's `checkins/<name>.toml`, and every problem found (sorted by file and line)."""
    problems: list[Problem] = []
    found: dict[str, Questionnaire] = {}
    english_path = content_dir / FALLBACK_LOCALE / "checkins" / f"{name}.toml"
    for path in sorted(content_dir.glob(f"*/checkins/{name}.toml")):
        questionnaire, file_problems = parse_questionnaire(path, path.parent.parent.name)
        problems.extend(file_problems)
        if questionnaire is None:
            continue
        if questionnaire.status == "draft" and not allow_drafts:
            problems.append(Problem(path, 1, Severity.WARNING, "status is draft: not used until reviewed "
                                    "(or [content] allow_drafts = true)"))
            continue
        found[questionnaire.locale] = questionnaire
    english = found.get(FALLBACK_LOCALE)
    if not english_path.exists():
        sink = ProblemSink(english_path)
        sink.error(1, f"missing: the check-in needs {english_path} (English is the fallback for every language)")
        problems.extend(sink.problems)
    for locale, questionnaire in list(found.items()):
        if english is None or locale == FALLBACK_LOCALE:
            continue
        sink = ProblemSink(questionnaire.path)
        _same_questions(english, questionnaire, sink)
        problems.extend(sink.problems)
        if sink.has_errors:
            del found[locale]  # English is used for this language until the translation is fixed
    locale_dirs = sorted(p for p in content_dir.iterdir() if (p / "ui.toml").exists()) if content_dir.exists() else []
    for locale_dir in locale_dirs:
        path = locale_dir / "checkins" / f"{name}.toml"
        if locale_dir.name != FALLBACK_LOCALE and not path.exists():
            problems.append(Problem(path, 1, Severity.WARNING, "no translation: the English questions are used"))
    return found, sorted(problems)


def load_checkin_content(content_dir: Path, name: str = "daily", *, allow_drafts: bool = False) -> CheckinContent:
    """The check-in questions the bot asks; raises CheckinContentError when English is unusable."""
    found, problems = check_questionnaires(content_dir, name, allow_drafts=allow_drafts)
    if FALLBACK_LOCALE not in found:
        errors = "\n".join(str(p) for p in problems if p.is_error) or f"no usable {FALLBACK_LOCALE} questionnaire"
        raise CheckinContentError(f"the check-in questions cannot be used:\n{errors}")
    return CheckinContent(found, tuple(problems))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot.content.checkins [DIR] [--name daily]`: print every problem; exit 1 on errors."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bot.content.checkins",
                                     description="Check the check-in questionnaires for mistakes.")
    parser.add_argument("dir", nargs="?", type=Path, default=Path("content"))
    parser.add_argument("--name", default="daily", help="questionnaire file name without .toml (default: daily)")
    args = parser.parse_args(argv)
    found, problems = check_questionnaires(args.dir, args.name)
    for problem in problems:
        print(problem)
    errors = sum(p.is_error for p in problems)
    print(f"check-in check {'FAILED' if errors else 'OK'}: {len(found)} languages usable, {errors} errors, "
          f"{len(problems) - errors} warnings", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
