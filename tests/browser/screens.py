"""Helpers of the browser tests: numbered screenshots saved as test artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"


class Screens:
    """Saves numbered screenshots of one story under test-artifacts/browser/<story>-NN-<what>.png."""

    def __init__(self, story: str) -> None:
        self.prefix = story
        self.count = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{self.prefix}-*.png"):
            old.unlink()

    def __call__(self, page: Any, what: str) -> Path:
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count:02d}-{what}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
