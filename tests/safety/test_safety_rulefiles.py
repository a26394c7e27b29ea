"""Rule files that are wrong must stop loading, naming every problem as path:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.safety.levels import Level
from bot.safety.rules import SafetyRules, SafetyRulesError

HEADER = """\
[file]
category = "suicide"
author = "test"
reviewer = "test"
reviewed = "pending"
"""

GOOD_RULE = """
[[rule]]
id = "want_to_die"
level = "urgent"
phrases = ["want to die"]
"""


def write(root: Path, name: str, text: str, locale: str = "en") -> Path:
    folder = root / locale / "safety"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(root: Path) -> str:
    with pytest.raises(SafetyRulesError) as caught:
        SafetyRules.load(root)
    return str(caught.value)


def test_a_minimal_valid_file_loads(tmp_path: Path) -> None:
    write(tmp_path, "suicide.toml", HEADER + GOOD_RULE)
    rules = SafetyRules.load(tmp_path)
    assert rules.assess("i just want to die").level == Level.URGENT
    assert rules.locales == ("en",)


def test_invalid_regex_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "suicide.toml",
        HEADER
        + GOOD_RULE
        + '\n[[rule]]\nid = "bad"\nlevel = "urgent"\npatterns = [\n  "fine",\n  "kill (myself",\n]\n',
    )
    message = problems(tmp_path)
    assert f"{path}:17:" in message
    assert "invalid regular expression" in message and "'bad'" in message


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "suicide.toml", HEADER + GOOD_RULE + 'severity = "high"\n')
    message = problems(tmp_path)
    assert f"{path}:11: unknown key 'severity' in [[rule]]" in message
    assert "allowed:" in message


def test_bad_level_and_category(tmp_path: Path) -> None:
    text = HEADER + '\n[[rule]]\nid = "x"\nlevel = "critical"\ncategory = "sadness"\nphrases = ["x y"]\n'
    path = write(tmp_path, "suicide.toml", text)
    message = problems(tmp_path)
    assert f"{path}:9: unknown level 'critical'; use one of: concern, urgent, imminent" in message
    assert f"{path}:10: unknown category 'sadness'" in message


def test_level_none_only_for_markers(tmp_path: Path) -> None:
    path = write(tmp_path, "suicide.toml", HEADER + '\n[[rule]]\nid = "x"\nlevel = "none"\nphrases = ["x y"]\n')
    assert f"{path}:9:" in problems(tmp_path)
    assert "only for markers" in problems(tmp_path)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a_suicide.toml", HEADER + GOOD_RULE)
    second = write(tmp_path, "b_more.toml", HEADER + GOOD_RULE)
    message = problems(tmp_path)
    assert f"{second}:7: duplicate rule id 'want_to_die' (first at {first}:7)" in message


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "suicide.toml", HEADER + '\n[[rule]]\nid = "x\nlevel = "urgent"\n')
    message = problems(tmp_path)
    assert f"{path}:8: TOML syntax error" in message


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    a = write(tmp_path, "suicide.toml", HEADER + GOOD_RULE + 'colour = "red"\n')
    b = write(tmp_path, "self_harm.toml", HEADER + '\n[[rule]]\nid = "y"\nlevel = "loud"\nphrases = ["a b"]\n')
    message = problems(tmp_path)
    assert str(a) in message and str(b) in message
    assert message.startswith("2 problems in the safety rule files:")


def test_missing_file_table(tmp_path: Path) -> None:
    path = write(
        tmp_path, "suicide.toml", GOOD_RULE.replace('level = "urgent"', 'level = "urgent"\ncategory = "suicide"')
    )
    assert f"{path}:1: missing [file] table" in problems(tmp_path)


def test_bad_phrase_notation(tmp_path: Path) -> None:
    text = HEADER + '\n[[rule]]\nid = "x"\nlevel = "urgent"\nphrases = [\n  "ok phrase",\n  "(want|wish to die",\n]\n'
    path = write(tmp_path, "suicide.toml", text)
    message = problems(tmp_path)
    assert f"{path}:12: rule 'x': phrase '(want|wish to die'" in message and "not closed" in message


def test_filler_word_alone_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path, "suicide.toml", HEADER + '\n[[rule]]\nid = "x"\nlevel = "urgent"\nphrases = ["(just|really) die"]\n'
    )
    message = problems(tmp_path)
    assert f"{path}:10:" in message and "ignored in matching" in message


def test_pattern_with_uppercase_never_matches(tmp_path: Path) -> None:
    path = write(
        tmp_path, "suicide.toml", HEADER + '\n[[rule]]\nid = "x"\nlevel = "urgent"\npatterns = ["Want to die"]\n'
    )
    message = problems(tmp_path)
    assert f"{path}:10:" in message and "'W'" in message


def test_bad_guard_kind(tmp_path: Path) -> None:
    write(tmp_path, "suicide.toml", HEADER + GOOD_RULE)
    path = write(tmp_path, "guards.toml", HEADER + '\n[[guard]]\nid = "g"\nkind = "sarcasm"\nphrases = ["lol"]\n')
    message = problems(tmp_path)
    assert f"{path}:9: unknown guard kind 'sarcasm'" in message


def test_no_english_rules(tmp_path: Path) -> None:
    write(tmp_path, "suicide.toml", HEADER + GOOD_RULE, locale="es")
    assert "no English safety rules found" in problems(tmp_path)


def test_the_shipped_rule_files_load(rules: SafetyRules) -> None:
    assert set(rules.locales) >= {"en", "es"}
    ids = [rule.id for rule in rules.rules]
    assert len(ids) == len(set(ids))
    assert all(rule.where.split(":")[-1].isdigit() for rule in rules.rules)
    assert rules.load_seconds < 30
