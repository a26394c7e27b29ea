"""Hot reload keeps serving the last good library when a changed file has errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.content.store import ContentStore, ReloadStatus
from tests.content.builders import ContentTree


def touch_later(path: Path) -> None:
    # Filesystems with coarse timestamps could give a rewrite the same mtime: move it on explicitly.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_unchanged_files_are_not_reloaded(tree: ContentTree) -> None:
    tree.snippet("calm")
    store = ContentStore(tree.root)
    assert store.reload_if_changed().status is ReloadStatus.UNCHANGED


def test_a_good_change_is_picked_up(tree: ContentTree) -> None:
    path = tree.snippet("calm", title="Old title")
    store = ContentStore(tree.root)
    tree.snippet("calm", title="New title")
    touch_later(path)
    added = tree.exercise("practice")
    outcome = store.reload_if_changed()
    assert outcome.status is ReloadStatus.RELOADED
    assert set(outcome.changed) == {path, added}
    assert store.library.get("calm", "en").title == "New title"  # type: ignore[union-attr]
    assert store.library.exercise("practice", "en") is not None


def test_a_broken_new_file_keeps_the_last_good_library(
    tree: ContentTree, caplog: pytest.LogCaptureFixture
) -> None:
    tree.snippet("calm")
    store = ContentStore(tree.root)
    before = store.library
    participant_text = "Participant-facing words that must never reach a log"
    broken = tree.snippet("broken", title=participant_text, autor="typo")
    tree.snippet("fine-but-together")  # arrives in the same change: held back too

    with caplog.at_level(logging.INFO, logger="iopbot.content"):
        outcome = store.reload_if_changed()
    assert outcome.status is ReloadStatus.KEPT_PREVIOUS
    assert outcome.blocking == (broken,)
    assert store.library is before
    assert store.library.get("fine-but-together", "en") is None
    assert any(str(broken) in r.getMessage() and "1 errors" in r.getMessage() for r in caplog.records)
    assert all(
        participant_text not in r.getMessage() and "autor" not in r.getMessage() for r in caplog.records
    )

    # Looked at once: no new verdict (and no new log line) until the files change again.
    assert store.reload_if_changed().status is ReloadStatus.UNCHANGED

    broken.unlink()
    outcome = store.reload_if_changed()
    assert outcome.status is ReloadStatus.RELOADED
    assert store.library.get("fine-but-together", "en") is not None


def test_breaking_a_live_file_keeps_its_previous_version(tree: ContentTree) -> None:
    path = tree.exercise("practice", title="Working version")
    store = ContentStore(tree.root)
    tree.exercise(
        "practice", title="Broken version", body='\n## step: a text\nHi.\n\n```toml\nnext = "zzz"\n```\n'
    )
    touch_later(path)
    outcome = store.reload_if_changed()
    assert outcome.status is ReloadStatus.KEPT_PREVIOUS
    assert store.library.get("practice", "en").title == "Working version"  # type: ignore[union-attr]
    assert any(p.path == path and p.is_error for p in outcome.problems)

    tree.exercise("practice", title="Fixed version")
    touch_later(path)
    touch_later(path)
    assert store.reload_if_changed().status is ReloadStatus.RELOADED
    assert store.library.get("practice", "en").title == "Fixed version"  # type: ignore[union-attr]


def test_a_file_broken_at_start_does_not_block_later_good_changes(tree: ContentTree) -> None:
    tree.snippet("bad", topic="nonsense")
    tree.snippet("calm")
    store = ContentStore(tree.root)  # serves what is valid; nothing older to fall back to
    assert store.library.get("calm", "en") is not None and store.library.get("bad", "en") is None
    tree.snippet("new")
    assert store.reload_if_changed().status is ReloadStatus.RELOADED
    assert store.library.get("new", "en") is not None
