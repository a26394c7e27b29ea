"""The operator's commands answer in well under a second: the ones that need no Telegram never
import aiogram (seconds of CPU on a small machine), directly or through a service. Only `iopbot run`,
`iopbot sandbox` and an invite without a configured bot username pay for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.databases import create_sqlite_database

REPO = Path(__file__).resolve().parents[2]

# Each command runs in one fresh process, in this order, and reports what it added to sys.modules.
_RUN_COMMANDS = """
import json, sys

from bot.cli import main

config = sys.argv[1]
report = []
for argv in json.loads(sys.argv[2]):
    code = main(["--config", config, *argv])
    report.append([argv, code, sorted(m for m in sys.modules if m.split(".")[0] == "aiogram")])
print("REPORT " + json.dumps(report))
"""

FAST_COMMANDS = [
    (["invite", "staff", "--alias", "dr-a", "--role", "therapist"], 0),
    (["invite", "participant", "--alias", "P-1", "--therapist", "dr-a"], 0),
    (["sessions", "list"], 0),
    (["sessions", "group", "list"], 0),
    (["doctor"], 1),  # dr-a has no chat yet: P-1 is uncovered
    (["keys", "status"], 0),
    (["invite", "revoke", "P-1"], 0),
    (["participant", "discharge", "P-1"], 0),
    (["content", "check"], 0),
    (["safety", "classify"], 0),
]


def test_commands_without_telegram_do_not_import_aiogram(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[program]\nname = "Test"\n[database]\nurl = "{create_sqlite_database(tmp_path / "db")}"\n'
                      f'[telegram]\nbot_username = "test_bot"\n[content]\ndirectory = "{REPO / "content"}"\n')
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "I feel fine today", "label": "none"}\n')
    cases = [*FAST_COMMANDS, (["safety", "eval", str(labelled)], 0)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOT_TOKEN", "DATABASE_URL", "IOPBOT_DATA_KEY", "IOPBOT_CLOCK_FILE")}
    done = subprocess.run(  # noqa: S603 (our own interpreter and script, fixed arguments)
        [sys.executable, "-c", _RUN_COMMANDS, str(config), json.dumps([a for a, _ in cases])],
        input="I feel fine today\n", capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
        check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done.stdout + done.stderr
    report = json.loads(lines[-1].removeprefix("REPORT "))
    assert [(argv, code) for argv, code, _ in report] == [(argv, code) for argv, code in cases], done.stderr
    for argv, _, aiogram in report:
        assert aiogram == [], f"`iopbot {' '.join(argv)}` imported {aiogram[:3]}…"


def test_help_does_not_import_aiogram() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bot", "invite", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    assert "usage: iopbot invite" in done.stdout
    assert "aiogram" not in done.stderr
