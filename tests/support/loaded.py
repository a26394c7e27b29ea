"""What is loaded from a content folder once per test session instead of once per in-process bot:
the compiled safety rules (seconds of CPU each time) and the content library (a ContentStore).

In-process bots get them through `bot.runtime.assemble(safety_rules=..., content=...)`, the explicit
injection point; `iopbot run` (and so every end-to-end test) loads them itself as always. An entry
is used again only while the folder's files are unchanged (same paths, sizes and modification
times), so a test that edits a folder gets a fresh load. Both objects are read-only in use: the
rules only assess; the store only reloads when its files change.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.content.store import ContentStore
from bot.safety.rules import SafetyRules

Fingerprint = tuple[tuple[str, int, int], ...]

_rules: dict[tuple[Path, Fingerprint], SafetyRules] = {}
_stores: dict[tuple[Path, bool, float, Fingerprint], ContentStore] = {}


def _fingerprint(directory: Path) -> Fingerprint:
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(root, name))
            found.append((os.path.join(root, name), st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


def safety_rules(content_dir: Path) -> SafetyRules:
    """`SafetyRules.load(content_dir)`, compiled once per session for unchanged files."""
    content_dir = Path(content_dir).resolve()
    key = (content_dir, _fingerprint(content_dir))
    if key not in _rules:
        _rules[key] = SafetyRules.load(content_dir)
    return _rules[key]


def content_store(content_dir: Path, *, allow_drafts: bool, grade_limit: float) -> ContentStore:
    """A ContentStore for `content_dir` with these settings, loaded once per session for unchanged files."""
    content_dir = Path(content_dir)
    key = (content_dir.resolve(), allow_drafts, grade_limit, _fingerprint(content_dir))
    if key not in _stores:
        _stores[key] = ContentStore(content_dir, allow_drafts=allow_drafts, grade_limit=grade_limit)
    return _stores[key]
