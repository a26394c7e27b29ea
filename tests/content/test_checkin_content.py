"""The check-in questionnaire files: the shipped ones load in both languages; mistakes an author
makes are reported with file:line and what to do, and a broken translation falls back to English."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.content.checkins import (
    CheckinContentError,
    QuestionKind,
    check_questionnaires,
    load_checkin_content,
    parse_questionnaire,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_daily_checkin_loads_in_english_and_spanish() -> None:
    content = load_checkin_content(REPO / "content")
    assert not [p for p in content.problems if p.is_error]
    en, es = content.get("en"), content.get("es")
    assert [q.id for q in en.questions] == ["mood", "craving", "sleep_hours", "medication", "safety", "note"]
    assert [q.id for q in es.questions] == [q.id for q in en.questions]
    assert en.question("mood").kind is QuestionKind.SCALE and en.question("mood").high == 10  # type: ignore[union-attr]
    assert [c.label for c in es.question("safety").choices] == ["Sí", "No"]  # type: ignore[union-attr]
    assert content.get("fr") is en  # no French: English


def _library(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "content" / "en" / "checkins", tmp_path / "en" / "checkins")
    shutil.copytree(REPO / "content" / "es" / "checkins", tmp_path / "es" / "checkins")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_mistakes_are_reported_with_file_and_line(tmp_path: Path) -> None:
    root = _library(tmp_path)
    daily = root / "en" / "checkins" / "daily.toml"
    _edit(daily, 'max = 10\ncolumns = 6\ntext = "How strong', 'max = 50\ncolumns = 6\ntext = "How strong')
    _edit(daily, 'id = "sleep_hours"\nkind = "number"', 'id = "sleep_hours"\nkind = "numbr"')
    _edit(daily, 'optional = true', 'optional = true\ncolour = "blue"')
    _, problems = parse_questionnaire(daily, "en")
    text = [str(p) for p in problems]
    assert any(f"daily.toml:{_line_of(daily, 'max = 50')}: error: question 'craving': a scale has at most 21" in t
               for t in text), text
    assert any(f"daily.toml:{_line_of(daily, 'numbr')}: error: question 'sleep_hours': 'kind' must be one of" in t
               for t in text), text
    assert any(f"daily.toml:{_line_of(daily, 'colour')}: error: unknown key 'colour'" in t for t in text), text


def test_the_safety_question_cannot_be_removed_or_made_optional(tmp_path: Path) -> None:
    root = _library(tmp_path)
    daily = root / "en" / "checkins" / "daily.toml"
    _edit(daily, 'id = "safety"\nkind = "choice"', 'id = "safety"\nkind = "choice"\noptional = true')
    _, problems = parse_questionnaire(daily, "en")
    assert any("the safety question cannot be optional" in str(p) for p in problems)
    _edit(daily, 'id = "safety"', 'id = "safe_today"')
    _, problems = parse_questionnaire(daily, "en")
    assert any("must ask the safety question" in str(p) and p.is_error for p in problems)
    with pytest.raises(CheckinContentError, match="must ask the safety question"):
        load_checkin_content(root)


def test_a_translation_must_ask_the_same_questions_with_the_same_values(tmp_path: Path) -> None:
    root = _library(tmp_path)
    spanish = root / "es" / "checkins" / "daily.toml"
    _edit(spanish, '{ value = "not_prescribed", label = "No tomo ninguno" }', '{ value = "ninguno", label = "No tomo ninguno" }')
    found, problems = check_questionnaires(root)
    assert "es" not in found and "en" in found  # Spanish speakers get the English questions meanwhile
    assert any(str(p).startswith(f"{spanish}:") and "same values as English" in str(p) for p in problems)


def test_broken_toml_names_the_line(tmp_path: Path) -> None:
    root = _library(tmp_path)
    daily = root / "en" / "checkins" / "daily.toml"
    _edit(daily, 'kind = "scale"', 'kind = "scale')
    _, problems = parse_questionnaire(daily, "en")
    assert problems and problems[0].line == _line_of(daily, 'kind = "scale') and "not valid TOML" in problems[0].message
