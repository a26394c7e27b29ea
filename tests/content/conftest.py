"""Fixtures of the content-library tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.content.builders import ContentTree


@pytest.fixture
def tree(tmp_path: Path) -> ContentTree:
    return ContentTree(tmp_path / "content")
