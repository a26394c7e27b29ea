"""Hot reload: serve the current library and swap in a new one when files change, but only if the
change does not break anything (the last good version is kept otherwise).

Logs name files and count problems; they never contain content text (CLINICAL.md, Privacy).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.content.library import Library, LoadResult, discover, load_library
from bot.content.model import STARTER_TRACKS
from bot.content.problems import Problem
from bot.content.validate import DEFAULT_GRADE_LIMIT

log = logging.getLogger("iopbot.content")

Snapshot = dict[Path, tuple[int, int, int]]  # path -> (mtime_ns, size, inode)


class ReloadStatus(StrEnum):
    UNCHANGED = "unchanged"
    RELOADED = "reloaded"
    KEPT_PREVIOUS = "kept_previous"  # files changed but have errors: still serving the last good library


@dataclass(frozen=True)
class ReloadOutcome:
    status: ReloadStatus
    changed: tuple[Path, ...] = ()  # added, modified or removed files
    blocking: tuple[Path, ...] = ()  # files whose errors kept the previous library
    problems: tuple[Problem, ...] = ()  # everything found by the load (empty when unchanged)


def _scan(content_dir: Path) -> Snapshot:
    snapshot: Snapshot = {}
    for source in discover(content_dir)[0]:
        try:
            st = os.stat(source.path)
        except FileNotFoundError:  # removed between listing and stat: the next scan sees it
            continue
        snapshot[source.path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return snapshot


def _count_by_file(problems: list[Problem]) -> dict[Path, int]:
    counts: dict[Path, int] = {}
    for p in problems:
        if p.is_error:
            counts[p.path] = counts.get(p.path, 0) + 1
    return counts


class ContentStore:
    """Holds the library that handlers read (`store.library`); call `reload_if_changed()` periodically."""

    def __init__(
        self,
        content_dir: Path,
        *,
        allow_drafts: bool = False,
        grade_limit: float = DEFAULT_GRADE_LIMIT,
        tracks: Collection[str] = STARTER_TRACKS,
    ) -> None:
        self.content_dir = content_dir
        self.allow_drafts = allow_drafts
        self.grade_limit = grade_limit
        self.tracks = tuple(tracks)  # the names front matter may use (a file naming another is not served)
        self._snapshot = _scan(content_dir)  # before loading: a change during the load is seen next time
        result = self._load()
        # At start there is no earlier version: serve what is valid; broken files stay out.
        self._library = result.library
        self._error_paths = set(_count_by_file(result.problems))
        self.last_problems: list[Problem] = result.problems
        self._log_load("content loaded", result)

    @property
    def library(self) -> Library:
        """The library to serve now (replaced as a whole on reload; never edited)."""
        return self._library

    def _load(self) -> LoadResult:
        return load_library(self.content_dir, allow_drafts=self.allow_drafts, grade_limit=self.grade_limit,
                            tracks=self.tracks)

    def _log_load(self, what: str, result: LoadResult) -> None:
        log.info(
            "%s from %s: %d items, %d errors, %d warnings",
            what,
            self.content_dir,
            len(result.library),
            len(result.errors),
            len(result.warnings),
        )
        for path, count in sorted(_count_by_file(result.problems).items()):
            log.warning("content file %s has %d errors and is not delivered", path, count)

    def reload_if_changed(self) -> ReloadOutcome:
        """Reload when a content file was added, changed or removed since the last look.

        The new library replaces the current one unless a changed file (or a file that was fine
        before) now has an error; then the last good library stays in service and the outcome
        names the files to fix.
        """
        snapshot = _scan(self.content_dir)
        if snapshot == self._snapshot:
            return ReloadOutcome(ReloadStatus.UNCHANGED)
        changed = tuple(
            sorted(
                p for p in snapshot.keys() | self._snapshot.keys() if snapshot.get(p) != self._snapshot.get(p)
            )
        )
        self._snapshot = snapshot  # not looked at again until it changes once more
        result = self._load()
        self.last_problems = result.problems
        error_counts = _count_by_file(result.problems)
        blocking = tuple(sorted(p for p in error_counts if p in changed or p not in self._error_paths))
        if blocking:
            for path in blocking:
                log.warning(
                    "content reload refused: %s has %d errors; still serving the previous library "
                    "(run the content check for details)",
                    path,
                    error_counts[path],
                )
            return ReloadOutcome(ReloadStatus.KEPT_PREVIOUS, changed, blocking, tuple(result.problems))
        self._library = result.library
        self._error_paths = set(error_counts)
        self._log_load(f"content reloaded ({len(changed)} files changed)", result)
        return ReloadOutcome(ReloadStatus.RELOADED, changed, (), tuple(result.problems))
