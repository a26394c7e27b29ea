"""Builders for small content libraries in a temporary folder: valid unless a test breaks them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from bot.content.library import LoadResult, load_library
from bot.content.problems import Problem

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "content"


class Raw(str):
    """A front-matter value written exactly as given (to write broken TOML on purpose)."""


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | date):
        return str(value) if isinstance(value, int) else value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def front_matter(item_id: str, **overrides: Any) -> str:
    """A complete, valid front matter; an override of None leaves the key out."""
    fields: dict[str, Any] = {
        "id": item_id,
        "title": "A test item",
        "topic": "coping",
        "tracks": ["mental_health", "substance_use"],
        "week": 1,
        "author": "Test Author",
        "clinical_reviewer": "Test Reviewer, PhD",
        "reviewed_on": date(2026, 1, 15),
        "version": 1,
        "status": "reviewed",
    }
    fields.update(overrides)
    lines = [f"{k} = {toml_value(v)}" for k, v in fields.items() if v is not None]
    return "+++\n" + "\n".join(lines) + "\n+++\n"


SNIPPET_BODY = """
You can take a short break when you feel tense.

---

A slow breath can help you feel calmer. Try one now.
"""

EXERCISE_BODY = """
## step: intro text
This is a short practice. It takes one minute.

## step: ask question
Do you want to go on?

```toml
key = "go_on"

[[choices]]
label = "Yes"
value = "yes"

[[choices]]
label = "No"
value = "no"
next = "stop"
```

## step: wait pause
Breathe in slowly.

```toml
seconds = 4
```

## step: note free_text
What do you notice now?

```toml
key = "notice"
button = "Skip"
```

## step: done reflection
Well done.

## step: stop reflection
That is okay. Come back any time.
"""


class ContentTree:
    """A content folder under tmp_path with helpers to add files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, locale: str, folder: str, name: str, text: str) -> Path:
        path = self.root / locale / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def snippet(self, item_id: str, *, locale: str = "en", body: str = SNIPPET_BODY, **fm: Any) -> Path:
        return self.write(locale, "psychoeducation", f"{item_id}.md", front_matter(item_id, **fm) + body)

    def exercise(self, item_id: str, *, locale: str = "en", body: str = EXERCISE_BODY, **fm: Any) -> Path:
        fm.setdefault("continue_label", "Next")
        return self.write(locale, "skills", f"{item_id}.md", front_matter(item_id, **fm) + body)

    def load(self, *, allow_drafts: bool = False, grade_limit: float = 8.0) -> LoadResult:
        return load_library(self.root, allow_drafts=allow_drafts, grade_limit=grade_limit)


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line number of the n-th line of `path` containing `needle`."""
    found = [n for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if needle in line]
    assert len(found) >= occurrence, f"{needle!r} not in {path}"
    return found[occurrence - 1]


def only(problems: list[Problem], predicate: Callable[[Problem], bool]) -> Problem:
    matching = [p for p in problems if predicate(p)]
    assert len(matching) == 1, "\n".join(map(str, problems))
    return matching[0]
