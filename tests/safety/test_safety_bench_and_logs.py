"""The throughput benchmark runs, and nothing logs the text being assessed."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from bot.safety.evaluation import evaluate
from bot.safety.normalize import normalize
from bot.safety.rules import SafetyRules

REPO = Path(__file__).resolve().parents[2]
PRIVATE_TEXT = "zebra-ostrich quiero morir i want to kill myself tonight 4815162342"


def test_benchmark_run_returns_figures() -> None:
    spec = importlib.util.spec_from_file_location("safety_throughput", REPO / "bench" / "safety_throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.run(count=2000)
    assert figures["messages"] == 2000
    assert figures["messages_per_second"] > 1000  # the real figure is measured by the script
    assert figures["rules_load_seconds"] > 0


def test_no_text_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rules = SafetyRules.load(REPO / "content")
    for locale in ("en", "es"):
        rules.assess(PRIVATE_TEXT, locale)
        rules.explain(PRIVATE_TEXT, locale)
    normalize(PRIVATE_TEXT)
    evaluate([{"text": PRIVATE_TEXT, "label": 0}, {"text": PRIVATE_TEXT, "label": 1}], rules)
    logged = caplog.text.casefold()
    for word in ("zebra", "ostrich", "morir", "kill", "4815162342"):
        assert word not in logged
