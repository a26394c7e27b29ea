"""`iopbot content check` covers the support persons' family reads (content/<locale>/family/) and
the group discussion prompts (content/<locale>/group_prompts/): a broken file is reported with its
file:line, and the command fails (exit 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import iopbot as cli

SHIPPED = Path(__file__).resolve().parents[2] / "content"


@pytest.fixture
def content(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(SHIPPED, target)
    return target


def _line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_broken_family_reads_and_prompts_are_reported_with_file_and_line(
        content: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # (The shipped files pass: tests/content/test_content_check.py checks the whole library.)
    crisis = content / "es" / "family" / "what-to-do-in-a-crisis.md"
    _edit(crisis, "{crisis_line}", "{linea_de_crisis}")
    caring = content / "en" / "family" / "caring-for-yourself.md"
    _edit(caring, 'status = "reviewed"', 'status = "reviewd"')
    prompt = content / "en" / "group_prompts" / "small-win.md"
    _edit(prompt, 'id = "small-win"', 'id = "small-wins"')
    (content / "es" / "group_prompts" / "notes.txt").write_text("ideas", encoding="utf-8")

    assert cli.main(["content", "check", str(content), "--config", str(SHIPPED.parent / "config.toml")]) == 1
    out = capsys.readouterr().out
    # A family read: a placeholder the bot does not fill in, at its line, saying what may be used.
    line = _line_of(crisis, "{linea_de_crisis}")
    assert f"what-to-do-in-a-crisis.md:{line}: error: {{linea_de_crisis}} is not filled in by the bot" in out
    assert "may use only {chat_url}, {crisis_line}, {emergency}" in out
    # ...and a front matter mistake.
    assert "caring-for-yourself.md:" in out and "reviewd" in out
    # A group prompt: its id, and a stray file.
    assert "small-win.md:2: error: id 'small-wins' must match the file name (small-win.md)" in out
    assert "notes.txt:1: warning: only .md files are prompts" in out
