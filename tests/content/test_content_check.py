"""`iopbot content check` catches a clinician's broken edit in any content file, with file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.content.check import check_content, main
from bot.content.i18n import Texts, TextsError

SHIPPED = Path(__file__).resolve().parents[2] / "content"


@pytest.fixture
def content(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(SHIPPED, target)
    return target


def _line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def test_the_shipped_content_has_no_errors() -> None:
    assert [p for p in check_content(SHIPPED) if p.is_error] == []


def test_a_broken_safety_rule_is_reported_with_its_line(content: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = content / "en" / "safety" / "suicide.toml"
    text = path.read_text(encoding="utf-8").replace('level = "urgent"', 'level = "urgnet"', 1)
    path.write_text(text, encoding="utf-8")
    assert main([str(content)]) == 1
    out = capsys.readouterr().out
    assert f"suicide.toml:{_line_of(path, 'urgnet')}: error: " in out and "urgnet" in out


def _add_text(content: Path, locale: str, text: str) -> Path:
    path = content / locale / "ui.toml"
    path.write_text(path.read_text(encoding="utf-8") + f'\n[check_test]\nhello = "{text}"\n', encoding="utf-8")
    return path


def test_a_translation_with_other_placeholders_is_an_error(content: Path) -> None:
    _add_text(content, "en", "Hi {name}, your session starts at {time}")
    path = _add_text(content, "es", "Hola {nombre}, tu sesión empieza a las {time}")
    problems = [p for p in check_content(content) if p.is_error]
    assert len(problems) == 1
    assert problems[0].path == path and problems[0].line == _line_of(path, "{nombre}")
    assert "check_test.hello" in problems[0].message and "name" in problems[0].message


def test_a_broken_brace_is_an_error(content: Path) -> None:
    path = _add_text(content, "en", "Hi {name, welcome")
    _add_text(content, "es", "Hola {name}, bienvenido")
    problems = [p for p in check_content(content) if p.is_error and p.path == path]
    assert len(problems) == 1 and problems[0].line == _line_of(path, "{name, welcome")
    assert "placeholder" in problems[0].message


def test_a_broken_checkin_file_is_reported(content: Path) -> None:
    path = content / "en" / "checkins" / "daily.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n[[question]\n", encoding="utf-8")
    problems = [p for p in check_content(content) if p.is_error]
    assert any(p.path == path for p in problems)


def test_a_feature_text_file_is_read_and_checked_like_ui_toml(content: Path) -> None:
    """Texts may live in content/<locale>/ui/<feature>.toml; a key in two files is an error."""
    (content / "en" / "ui").mkdir(exist_ok=True)
    (content / "es" / "ui").mkdir(exist_ok=True)
    (content / "en" / "ui" / "feature.toml").write_text('[check_test]\nhello = "Hi {name}"\n', encoding="utf-8")
    spanish = content / "es" / "ui" / "feature.toml"
    spanish.write_text('[check_test]\nhello = "Hola {nombre}"\n', encoding="utf-8")
    problems = [p for p in check_content(content) if p.is_error]
    assert [(p.path, p.line) for p in problems] == [(spanish, 2)]
    spanish.write_text('[check_test]\nhello = "Hola {name}"\n', encoding="utf-8")
    assert [p for p in check_content(content) if p.is_error] == []
    assert Texts.load(content).get("check_test.hello", "es", name="Ana") == "Hola Ana"
    _add_text(content, "en", "Hi again {name}")
    problems = [p for p in check_content(content) if p.is_error]
    assert len(problems) == 1 and "already defined" in problems[0].message
    with pytest.raises(TextsError, match="already defined"):
        Texts.load(content)
