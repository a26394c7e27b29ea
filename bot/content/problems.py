"""A problem found in a content file, reported as `file:line: severity: message`."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Severity(StrEnum):
    # An error keeps the file from participants; a warning is delivered but should be fixed.
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """One finding. `message` says what is wrong and what to do; `line` is 1-based."""

    path: Path
    line: int
    severity: Severity
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def display_path(self) -> str:
        """The path relative to the working directory when it is below it (shorter to read)."""
        cwd = Path.cwd()
        return str(self.path.relative_to(cwd)) if self.path.is_relative_to(cwd) else str(self.path)

    def __str__(self) -> str:
        return f"{self.display_path()}:{self.line}: {self.severity.value}: {self.message}"


class ProblemSink:
    """Collects problems for one file so parsers need not repeat the path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, max(line, 1), Severity.ERROR, message))

    def warning(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, max(line, 1), Severity.WARNING, message))

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)


def read_toml(sink: ProblemSink) -> tuple[str, dict[str, Any]] | None:
    """The file's text and its TOML, or None with the reason in `sink` (not UTF-8; not valid TOML,
    at the line tomllib names), so every TOML content file says the same thing about the same fault."""
    try:
        text = sink.path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        sink.error(1, "the file is not UTF-8 text: save it as UTF-8 in your editor")
        return None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        sink.error(int(match.group(1)) if match else 1,
                   f"not valid TOML: {re.sub(r' [(]at line.*', '', str(exc))}")
        return None
