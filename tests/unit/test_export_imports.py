"""`iopbot export` answers like the other operator commands: it never imports aiogram, directly
or through a service (tests/unit/test_cli_imports.py for the rest), in all three formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.databases import create_sqlite_database

REPO = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys

from bot.cli import main

config, out = sys.argv[1], sys.argv[2]
codes = [main(["--config", config, "export", "--all", "--format", fmt, "--recipient", "EHR import", "--out",
               f"{out}/{fmt}" if fmt == "csv" else f"{out}/export.{fmt}.json"]) for fmt in ("csv", "json", "fhir")]
print("REPORT " + json.dumps([codes, sorted(m for m in sys.modules if m.split(".")[0] == "aiogram")]))
"""


def test_export_does_not_import_aiogram(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "Test"\n[database]\nurl = "{create_sqlite_database(tmp_path / "db")}"\n'
                      f'[content]\ndirectory = "{REPO / "content"}"\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOT_TOKEN", "DATABASE_URL", "IOPBOT_DATA_KEY", "IOPBOT_CLOCK_FILE")}
    done = subprocess.run(  # noqa: S603 (our own interpreter and script, fixed arguments)
        [sys.executable, "-c", _RUN, str(config), str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
        env=env, timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done.stdout + done.stderr
    codes, aiogram = json.loads(lines[-1].removeprefix("REPORT "))
    assert codes == [0, 0, 0], done.stderr
    assert aiogram == [], f"`iopbot export` imported {aiogram[:3]}…"
    assert json.loads((tmp_path / "export.fhir.json").read_text())["resourceType"] == "Bundle"
