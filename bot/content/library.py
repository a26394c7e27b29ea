"""The content library: loading every file of `content/<locale>/{psychoeducation,skills}/` and looking
items up by id, locale, topic, track and week.

A file with an error is left out of the library (it is reported, never delivered); drafts are left
out unless the program allows them. Everything else is delivered, warnings included.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.content.model import (
    DEFAULT_LOCALE,
    STARTER_TRACKS,
    ContentItem,
    Exercise,
    Snippet,
    Status,
    Topic,
    Track,
)
from bot.content.parse import ItemKind, parse_file
from bot.content.problems import Problem, ProblemSink, Severity
from bot.content.validate import DEFAULT_GRADE_LIMIT, check_item, check_translations

LOCALE_DIR_RE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z]{2,4})?$")


class Library:
    """An immutable set of delivered items. Look-ups fall back to English for a missing translation."""

    def __init__(self, items: Iterable[ContentItem] = (), *, default_locale: str = DEFAULT_LOCALE) -> None:
        self.default_locale = default_locale
        self._items: dict[str, dict[str, ContentItem]] = {}
        self._views: dict[str, list[ContentItem]] = {}  # per locale; safe to cache, the library never changes
        for item in items:
            self._items.setdefault(item.locale, {})[item.id] = item

    def __len__(self) -> int:
        return sum(len(by_id) for by_id in self._items.values())

    def __iter__(self) -> Iterator[ContentItem]:
        for locale in sorted(self._items):
            yield from self._items[locale].values()

    @property
    def locales(self) -> tuple[str, ...]:
        """Locales that have at least one delivered item."""
        return tuple(sorted(self._items))

    def ids(self) -> set[str]:
        """Every id in any locale."""
        return {item_id for by_id in self._items.values() for item_id in by_id}

    def _chain(self, locale: str) -> list[str]:
        # "es-MX" -> es-MX, es, en: the most specific translation there is.
        chain = [locale, locale.replace("_", "-").split("-")[0], self.default_locale]
        return list(dict.fromkeys(chain))

    def get(self, item_id: str, locale: str) -> ContentItem | None:
        """The item in `locale`, else in English; None if it is not in the library."""
        for candidate in self._chain(locale):
            item = self._items.get(candidate, {}).get(item_id)
            if item is not None:
                return item
        return None

    def snippet(self, item_id: str, locale: str) -> Snippet | None:
        """Like `get`, for a snippet only."""
        item = self.get(item_id, locale)
        return item if isinstance(item, Snippet) else None

    def exercise(self, item_id: str, locale: str) -> Exercise | None:
        """Like `get`, for an exercise only."""
        item = self.get(item_id, locale)
        return item if isinstance(item, Exercise) else None

    def _in_locale(self, locale: str) -> list[ContentItem]:
        view = self._views.get(locale)
        if view is None:
            found = (self.get(item_id, locale) for item_id in self.ids())
            view = sorted((item for item in found if item is not None), key=lambda i: i.meta.sort_key)
            self._views[locale] = view
        return view

    def snippets(
        self,
        locale: str,
        *,
        topic: Topic | str | None = None,
        track: Track | str | None = None,
        week: int | None = None,
        up_to_week: int | None = None,
    ) -> list[Snippet]:
        """Snippets for a participant in `locale` (English where untranslated), by week then order.

        `track` keeps the items for that track (and those for every track: no `tracks` in their
        front matter); `week` keeps items of exactly that program week; `up_to_week` those that
        may be sent by then (including items without a week).
        """
        return [
            item
            for item in self._in_locale(locale)
            if isinstance(item, Snippet) and _matches(item, topic, track, week, up_to_week)
        ]

    def exercises(
        self, locale: str, *, topic: Topic | str | None = None, track: Track | str | None = None
    ) -> list[Exercise]:
        """Exercises for a participant in `locale` (English where untranslated)."""
        return [
            item
            for item in self._in_locale(locale)
            if isinstance(item, Exercise) and _matches(item, topic, track)
        ]


def _matches(
    item: ContentItem,
    topic: Topic | str | None,
    track: Track | str | None,
    week: int | None = None,
    up_to_week: int | None = None,
) -> bool:
    meta = item.meta
    if topic is not None and meta.topic != topic:
        return False
    if not meta.for_track(track):
        return False
    if week is not None and meta.week != week:
        return False
    return up_to_week is None or (meta.week or 0) <= up_to_week


@dataclass(frozen=True)
class LoadResult:
    """The delivered library, every problem found (sorted by file and line), and the files read."""

    library: Library
    problems: list[Problem]
    files: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


@dataclass(frozen=True)
class SourceFile:
    path: Path
    locale: str
    kind: ItemKind


def discover(content_dir: Path) -> tuple[list[SourceFile], list[Problem], list[str]]:
    """Content files under `content_dir`, problems with stray files, and the locales found."""
    sources: list[SourceFile] = []
    problems: list[Problem] = []
    if not content_dir.is_dir():
        problems.append(
            Problem(
                content_dir,
                1,
                Severity.ERROR,
                "content directory not found: pass the folder that holds en/, es/, … (usually ./content)",
            )
        )
        return sources, problems, []
    locales = sorted(d.name for d in content_dir.iterdir() if d.is_dir() and LOCALE_DIR_RE.match(d.name))
    for locale in locales:
        for kind in ItemKind:
            folder = content_dir / locale / kind.value
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.name.startswith((".", "#")) or path.name.endswith("~"):
                    continue  # editor backups and lock files
                if path.is_file() and path.suffix == ".md":
                    sources.append(SourceFile(path, locale, kind))
                else:
                    problems.append(
                        Problem(
                            path,
                            1,
                            Severity.WARNING,
                            f"ignored: only .md files in {kind.value}/ are "
                            "content; move other files elsewhere",
                        )
                    )
    return sources, problems, locales


def load_library(
    content_dir: Path,
    *,
    allow_drafts: bool,
    grade_limit: float = DEFAULT_GRADE_LIMIT,
    tracks: Collection[str] | None = STARTER_TRACKS,
) -> LoadResult:
    """Read, validate and index the whole library under `content_dir`.

    Never raises for bad content: every problem is in `problems`, and files with errors (and drafts,
    unless `allow_drafts`) are not in `library`. `tracks`: the names the front matter may use
    (`known_tracks(settings.content.tracks)`); None accepts any well-formed name.
    """
    sources, problems, locales = discover(content_dir)
    parsed: dict[str, dict[str, ContentItem]] = {}
    for source in sources:
        item, found = parse_file(source.path, source.locale, source.kind, known_tracks=tracks)
        problems.extend(found)
        if item is None:
            continue
        first = parsed.setdefault(source.locale, {}).get(item.id)
        if first is not None:
            sink = ProblemSink(source.path)
            sink.error(
                item.meta.id_line,
                f"id '{item.id}' is already used by {first.meta.path} in '{source.locale}': "
                "give this file its own id (ids are unique per language)",
            )
            problems.extend(sink.problems)
            continue
        parsed[source.locale][item.id] = item
        problems.extend(check_item(item, grade_limit=grade_limit))
    problems.extend(check_translations(parsed, locales))

    broken = {p.path for p in problems if p.is_error}
    delivered: list[ContentItem] = []
    for by_id in parsed.values():
        for item in by_id.values():
            if item.meta.path in broken:
                continue
            if item.meta.status is Status.DRAFT and not allow_drafts:
                problems.append(
                    Problem(
                        item.meta.path,
                        item.meta.id_line,
                        Severity.WARNING,
                        "status is draft: not delivered until a clinician reviews it and sets "
                        'status = "reviewed" (or the program allows drafts)',
                    )
                )
                continue
            delivered.append(item)
    return LoadResult(Library(delivered), sorted(problems), [s.path for s in sources])
