"""`python -m bench --quick --json` runs every benchmark end to end and ends with one JSON object.

A smoke test of the benchmark harness (the figures of a quick run are not comparable with a full
one, so no target is asserted here; `python -m bench` prints them against their targets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_everything_and_ends_with_json() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=380)
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures["results"]) == {"inbound", "outbound", "crisis", "scheduler", "safety", "caseload", "scale_out"}
    assert "skipped" in figures["results"]["scale_out"]  # full size only (the e2e test is the small one)
    failed = {name: r["error"] for name, r in figures["results"].items() if "error" in r}
    assert not failed, failed
    assert figures["results"]["inbound"]["sqlite"]["complete"]
    assert figures["results"]["outbound"]["telegram_limits"]["delivered"] == figures["results"]["outbound"][
        "telegram_limits"]["rows"]
    assert all(v["missing_replies"] == 0 for v in figures["results"]["crisis"]["variants"])
    assert all("error" not in r for r in figures["results"]["caseload"]["results"])
    assert figures["verdicts"], "the table has targets"
