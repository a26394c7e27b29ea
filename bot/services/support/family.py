"""Family psychoeducation: `content/<locale>/family/*.md`, short reads for support persons (how to
support recovery, how to talk about relapse, caring for yourself, what to do in a crisis).

The files have the same format as psychoeducation snippets (content/FORMAT.md) and are parsed and
checked by the same code (front matter, reviewer, length, reading grade, translations); they are
kept apart so that participants never get them in /learn, and support persons get nothing else.
The crisis numbers are not written in the files: `{crisis_line}`, `{emergency}` and `{chat_url}`
are filled from the program's crisis settings, as in the crisis reply, so a program outside the
US changes them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.content.model import Snippet, Status
from bot.content.parse import ItemKind, parse_file
from bot.content.problems import Problem
from bot.content.render import render_snippet
from bot.content.validate import check_item, check_translations
from bot.context import AppContext

FOLDER = "family"
DEFAULT_LOCALE = "en"


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


def load_family(content_dir: Path, *, allow_drafts: bool = False, grade_limit: float = 8.0) -> FamilyLibrary:
    """Every family read, checked like a snippet. A file with an error is left out (and reported)."""
    parsed: dict[str, dict[str, Snippet]] = {}
    problems: list[Problem] = []
    locales = sorted(d.name for d in content_dir.iterdir() if (d / FOLDER).is_dir()) if content_dir.is_dir() else []
    for locale in locales:
        for path in sorted((content_dir / locale / FOLDER).glob("*.md")):
            item, found = parse_file(path, locale, ItemKind.SNIPPET, known_tracks=None)
            problems.extend(found)
            if not isinstance(item, Snippet):
                continue
            checked = check_item(item, grade_limit=grade_limit)
            problems.extend(checked)
            if any(p.is_error for p in checked) or (item.meta.status is Status.DRAFT and not allow_drafts):
                continue
            parsed.setdefault(locale, {})[item.id] = item
    problems.extend(check_translations(parsed, locales))  # type: ignore[arg-type]
    ordered = {locale: tuple(sorted(items.values(), key=lambda s: s.meta.sort_key))
               for locale, items in parsed.items()}
    return FamilyLibrary(ordered, tuple(problems))


def family_library(ctx: AppContext) -> FamilyLibrary:
    """The library of the running bot (loaded once by `install_support`)."""
    return ctx.parts.get(FamilyLibrary)


def render_read(ctx: AppContext, snippet: Snippet, locale: str) -> list[str]:
    """The messages of one read (HTML), with the program's crisis numbers filled in."""
    crisis = ctx.settings.crisis_for(locale)
    values = {"{crisis_line}": crisis.call_or_text, "{emergency}": crisis.emergency_number,
              "{chat_url}": crisis.chat_url}
    out = []
    for message in render_snippet(snippet):
        text = message.text
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        out.append(text)
    return out
