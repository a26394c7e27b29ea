"""Fixtures for the safety tests: the real rule files, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.safety.rules import SafetyRules
from tests.support import loaded

REPO = Path(__file__).resolve().parents[2]
CONTENT = REPO / "content"


@pytest.fixture(scope="session")
def rules() -> SafetyRules:
    return loaded.safety_rules(CONTENT)  # compiled once per session, shared with in-process bots
