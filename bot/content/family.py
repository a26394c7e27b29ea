"""Family psychoeducation files: `content/<locale>/family/*.md`, loaded and checked.

The reads for support persons (bot/services/support/family.py delivers them). Same format as
psychoeducation snippets (content/FORMAT.md), parsed and checked by the same code (front matter,
reviewer, length, reading grade, translations), plus what is particular to them: the only
placeholders are the program's crisis numbers (`{crisis_line}`, `{emergency}`, `{chat_url}`,
filled from `[crisis]`); any other `{word}` would reach a worried parent as written, so it is an
error at its line. `iopbot content check` reports every problem as `file:line: severity: message`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.content.model import Snippet, Status
from bot.content.parse import ItemKind, parse_file
from bot.content.problems import Problem, ProblemSink
from bot.content.validate import check_item, check_translations

FOLDER = "family"
DEFAULT_LOCALE = "en"
PLACEHOLDERS = frozenset({"crisis_line", "emergency", "chat_url"})
_PLACEHOLDER = re.compile(r"\{([^{}\n]*)\}")


@dataclass(frozen=True)
class FamilyLibrary:
    """The family reads by locale, in their `order`; `problems` as `iopbot content check` reports them."""

    by_locale: dict[str, tuple[Snippet, ...]]
    problems: tuple[Problem, ...]

    def reads(self, locale: str) -> tuple[Snippet, ...]:
        return self.by_locale.get(locale) or self.by_locale.get(DEFAULT_LOCALE, ())

    def get(self, item_id: str, locale: str) -> Snippet | None:
        for snippet in self.reads(locale):
            if snippet.id == item_id:
                return snippet
        return None


def check_placeholders(path: Path) -> list[Problem]:
    """`{word}` in the text that the bot does not fill in: an error at its line."""
    sink = ProblemSink(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []  # parse_file reports an unreadable file
    known = ", ".join("{" + name + "}" for name in sorted(PLACEHOLDERS))
    in_front_matter = bool(lines) and lines[0].strip() == "+++"
    for number, line in enumerate(lines, 1):
        if number > 1 and in_front_matter and line.strip() == "+++":
            in_front_matter = False
            continue
        if in_front_matter:
            continue
        for match in _PLACEHOLDER.finditer(line):
            if match.group(1) not in PLACEHOLDERS:
                sink.error(number, f"{match.group(0)} is not filled in by the bot and would be shown as written; "
                           f"a family read may use only {known} (the program's crisis numbers)")
    return sink.problems


def load_family(content_dir: Path, *, allow_drafts: bool = False, grade_limit: float = 8.0) -> FamilyLibrary:
    """Every family read, checked like a snippet. A file with an error is left out (and reported)."""
    parsed: dict[str, dict[str, Snippet]] = {}
    problems: list[Problem] = []
    locales = sorted(d.name for d in content_dir.iterdir() if (d / FOLDER).is_dir()) if content_dir.is_dir() else []
    for locale in locales:
        folder = content_dir / locale / FOLDER
        for path in sorted(folder.iterdir()):
            if path.suffix != ".md":
                if path.is_file() and not path.name.startswith("."):
                    sink = ProblemSink(path)
                    sink.warning(1, "only .md files are family reads; this one is ignored")
                    problems += sink.problems
                continue
            item, found = parse_file(path, locale, ItemKind.SNIPPET, known_tracks=None)
            problems.extend(found)
            if not isinstance(item, Snippet):
                continue
            checked = [*check_item(item, grade_limit=grade_limit), *check_placeholders(path)]
            problems.extend(checked)
            if any(p.is_error for p in checked) or (item.meta.status is Status.DRAFT and not allow_drafts):
                continue
            parsed.setdefault(locale, {})[item.id] = item
    problems.extend(check_translations(parsed, locales))  # type: ignore[arg-type]
    ordered = {locale: tuple(sorted(items.values(), key=lambda s: s.meta.sort_key))
               for locale, items in parsed.items()}
    return FamilyLibrary(ordered, tuple(problems))
