"""Broken content files: each mistake is reported as an error (or warning) at the right file:line,
and a file with an error is never delivered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.content.check import check_content, main
from bot.content.problems import Problem, Severity
from tests.content.builders import EXERCISE_BODY, ContentTree, Raw, line_of, only


def errors_in(problems: list[Problem], path: Path) -> list[Problem]:
    return [p for p in problems if p.path == path and p.is_error]


def test_a_valid_tree_has_no_problems(tree: ContentTree) -> None:
    tree.snippet("breaks")
    tree.exercise("practice")
    result = tree.load()
    assert result.problems == []
    assert {i.id for i in result.library} == {"breaks", "practice"}


def test_invalid_toml_in_front_matter_points_at_its_line(tree: ContentTree) -> None:
    path = tree.snippet("bad-toml", title=Raw("Stress and you"))  # text without quotes
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.path == path
    assert problem.line == line_of(path, "title =")
    assert "not valid TOML" in problem.message and "quotes" in problem.message
    assert str(problem).endswith(f"bad-toml.md:{problem.line}: error: {problem.message}")


def test_front_matter_not_closed(tree: ContentTree) -> None:
    path = tree.write("en", "psychoeducation", "open.md", '+++\nid = "open"\ntitle = "x"\n\nSome text.\n')
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert (problem.path, problem.line) == (path, 1)
    assert "never closed" in problem.message


def test_yaml_front_matter_is_explained(tree: ContentTree) -> None:
    path = tree.write("en", "psychoeducation", "yaml.md", "---\nid: yaml\n---\nText.\n")
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert (problem.path, problem.line) == (path, 1)
    assert "TOML between '+++' lines" in problem.message


def test_unknown_front_matter_key_suggests_the_right_one(tree: ContentTree) -> None:
    path = tree.snippet("typo", autor="Someone")
    problem = only(tree.load().problems, lambda p: "autor" in p.message)
    assert problem.severity is Severity.ERROR
    assert problem.line == line_of(path, "autor =")
    assert "did you mean 'author'?" in problem.message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("topic", "stres", "did you mean 'stress'?"),
        ("tracks", ["mental_health", "alcohol"], "unknown track 'alcohol'"),
        ("status", "approved", "unknown status 'approved'"),
        ("week", 0, "whole number from 1 to 52"),
        ("id", "Bad Id", "lowercase letters"),
        ("reviewed_on", "31/01/2026", "not a date"),
        ("reviewed_on", Raw("2026-02-30"), "not valid TOML"),
        ("version", 0, "use a number like 1"),
    ],
)
def test_bad_front_matter_values(tree: ContentTree, key: str, value: object, expected: str) -> None:
    overrides: dict[str, Any] = {key: value}
    path = tree.snippet("item", **overrides)
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.line == line_of(path, f"{key} =")
    assert expected in problem.message


def test_missing_reviewer_is_an_error_for_reviewed_content(tree: ContentTree) -> None:
    path = tree.snippet("unreviewed", clinical_reviewer=None)
    result = tree.load()
    problem = only(result.problems, lambda p: "clinical_reviewer" in p.message)
    assert problem.severity is Severity.ERROR
    assert problem.path == path and "add clinical_reviewer" in problem.message
    assert len(result.library) == 0


@pytest.mark.parametrize("key", ["author", "reviewed_on"])
def test_missing_author_or_review_date_is_an_error(tree: ContentTree, key: str) -> None:
    overrides: dict[str, Any] = {key: None}
    tree.snippet("item", **overrides)
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert f"missing '{key}'" in problem.message


def test_draft_is_not_delivered_unless_allowed(tree: ContentTree) -> None:
    path = tree.snippet("draft", status="draft", clinical_reviewer=None, reviewed_on=None)
    tree.snippet("ready")
    result = tree.load(allow_drafts=False)
    assert result.library.get("draft", "en") is None
    assert result.library.get("ready", "en") is not None
    assert not result.errors
    assert any(p.path == path and "not delivered" in p.message for p in result.warnings)
    assert any(p.path == path and "clinical reviewer" in p.message for p in result.warnings)

    allowed = tree.load(allow_drafts=True)
    assert allowed.library.get("draft", "en") is not None


def test_duplicate_id_in_one_locale(tree: ContentTree) -> None:
    tree.snippet("same")
    second = tree.exercise("same-too", id="same")  # another file, the same id
    result = tree.load()
    problem = only(result.problems, lambda p: "already used" in p.message)
    assert problem.is_error and problem.path == second
    assert problem.line == line_of(second, "id =")
    assert "same.md" in problem.message
    assert result.library.get("same", "en").__class__.__name__ == "Snippet"  # the first file wins


def test_the_same_id_in_two_locales_is_a_translation_not_a_duplicate(tree: ContentTree) -> None:
    tree.snippet("same")
    tree.snippet("same", locale="es", title="Un tema")
    assert not tree.load().errors


def test_broken_step_reference(tree: ContentTree) -> None:
    body = EXERCISE_BODY.replace('next = "stop"', 'next = "stopp"')
    path = tree.exercise("broken-next", body=body)
    result = tree.load()
    problem = only(result.problems, lambda p: "does not exist" in p.message)
    assert problem.is_error
    assert problem.line == line_of(path, 'next = "stopp"')
    assert "did you mean 'stop'?" in problem.message
    assert result.library.get("broken-next", "en") is None


def test_unreachable_step(tree: ContentTree) -> None:
    body = EXERCISE_BODY + "\n## step: orphan text\nNobody gets here.\n"
    path = tree.exercise("orphan", body=body)
    problem = only(tree.load().problems, lambda p: "never be reached" in p.message)
    assert problem.line == line_of(path, "## step: orphan")


def test_loop_without_way_out(tree: ContentTree) -> None:
    body = """
## step: one text
First.

```toml
next = "two"
```

## step: two text
Second.

```toml
next = "one"
```
"""
    path = tree.exercise("loop", body=body)
    problems = tree.load().problems
    assert any("never end" in p.message and p.line == line_of(path, "## step: one") for p in problems)


def test_unknown_step_kind_and_setting(tree: ContentTree) -> None:
    body = EXERCISE_BODY.replace("## step: wait pause", "## step: wait pauze").replace(
        'key = "notice"', 'key = "notice"\nsecs = 3'
    )
    path = tree.exercise("kinds", body=body)
    problems = tree.load().problems
    kind = only(problems, lambda p: "unknown step kind" in p.message)
    assert kind.line == line_of(path, "pauze") and "did you mean 'pause'?" in kind.message
    setting = only(problems, lambda p: "unknown key 'secs'" in p.message)
    assert setting.line == line_of(path, "secs =")


def test_question_without_choices_and_duplicate_values(tree: ContentTree) -> None:
    body = EXERCISE_BODY.replace('value = "no"', 'value = "yes"')
    path = tree.exercise("dupes", body=body)
    problem = only(tree.load().problems, lambda p: "two choices" in p.message)
    assert problem.line == line_of(path, 'value = "yes"', occurrence=2)


def test_missing_step_settings_are_reported_at_the_step_heading(tree: ContentTree) -> None:
    body = EXERCISE_BODY.replace("```toml\nseconds = 4\n```", "").replace('key = "notice"\n', "")
    path = tree.exercise("unset", body=body)
    problems = tree.load().problems
    seconds = only(problems, lambda p: "missing 'seconds'" in p.message)
    assert seconds.line == line_of(path, "## step: wait pause")
    key = only(problems, lambda p: "missing 'key'" in p.message)
    assert key.line == line_of(path, "## step: note free_text")


def test_text_step_needs_a_button_label(tree: ContentTree) -> None:
    path = tree.exercise("nolabel", continue_label=None)
    problem = only(tree.load().problems, lambda p: "no button label" in p.message)
    assert problem.line == line_of(path, "## step: intro")


def test_over_long_snippet_message(tree: ContentTree) -> None:
    long_paragraph = " ".join(["Take one slow breath and let it go."] * 130)  # about 4700 characters
    body = f"\nA short first message.\n\n---\n\n{long_paragraph}\n"
    path = tree.snippet("long", body=body)
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.line == line_of(path, "Take one slow breath")
    assert "message 2 is" in problem.message and "4096" in problem.message


def test_over_long_exercise_step(tree: ContentTree) -> None:
    body = EXERCISE_BODY.replace("Breathe in slowly.", " ".join(["Breathe in slowly."] * 250))
    path = tree.exercise("longstep", body=body)
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.line == line_of(path, "## step: wait")
    assert "step 'wait'" in problem.message


def test_callback_data_too_long(tree: ContentTree) -> None:
    long_value = "a-very-long-choice-value-that-will-not-fit-in-button-data"
    body = EXERCISE_BODY.replace('value = "no"', f'value = "{long_value}"')
    path = tree.exercise("callback-sized-exercise", body=body)
    problem = only(tree.load().problems, lambda p: "callback data" in p.message)
    assert problem.is_error
    assert problem.line == line_of(path, long_value)
    data = f"fl:9999999999:ask:{long_value}"  # the flow engine's data, with a 10-digit run number
    assert f"'{data}' of {len(data.encode())} bytes" in problem.message


def test_callback_data_is_measured_in_utf8_bytes(tree: ContentTree) -> None:
    from bot.content.callbacks import callback_bytes, step_callback

    data = step_callback("y", "ñ" * 30, run_id=1)
    assert len(data) == 37 and callback_bytes(data) == 67


def test_an_item_id_too_long_for_a_menu_button(tree: ContentTree) -> None:
    long_id = "a-snippet-id-so-long-that-its-menu-button-would-not-fit-in-data"
    path = tree.snippet(long_id)
    problem = only(tree.load().problems, lambda p: "menu button" in p.message)
    assert problem.is_error and problem.path == path
    assert f"'ci:o:{long_id}'" in problem.message


def test_a_step_id_too_long_to_store(tree: ContentTree) -> None:
    body = EXERCISE_BODY.replace("## step: wait", "## step: wait_for_it_and_keep_waiting_a_little_longer")
    body = body.replace('next = "wait"', 'next = "wait_for_it_and_keep_waiting_a_little_longer"')
    tree.exercise("stored", body=body)
    problem = only(tree.load().problems, lambda p: "stored under names" in p.message)
    assert problem.is_error and "step id 'wait_for_it" in problem.message


def test_missing_translation_is_a_warning_naming_the_item(tree: ContentTree) -> None:
    english = tree.exercise("practice")
    tree.snippet("breaks")
    tree.snippet("breaks", locale="es", title="Pausas")
    result = tree.load()
    assert not result.errors
    problem = only(result.problems, lambda p: "not translated" in p.message)
    assert problem.severity is Severity.WARNING
    assert (problem.path, problem.line) == (english, line_of(english, "id ="))
    assert "es/skills/practice.md" in problem.message
    # Meanwhile Spanish participants get the English text.
    assert result.library.get("practice", "es") is not None


def test_translation_with_other_steps_is_an_error(tree: ContentTree) -> None:
    tree.exercise("practice")
    spanish = tree.exercise(
        "practice", locale="es", body=EXERCISE_BODY.replace('value = "no"', 'value = "non"')
    )
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.path == spanish
    assert problem.line == line_of(spanish, "## step: ask")
    assert "differs from the English original" in problem.message


def test_a_broken_translation_is_reported_once_not_as_missing(tree: ContentTree) -> None:
    tree.snippet("breaks")
    spanish = tree.snippet("breaks", locale="es", topic="nonsense")
    problems = tree.load().problems
    assert [(p.path, p.severity) for p in problems] == [(spanish, Severity.ERROR)]


def test_link_must_be_https(tree: ContentTree) -> None:
    body = "\nCall us at [our line](tel:5551234).\n"
    path = tree.snippet("links", body=body)
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.line == line_of(path, "tel:")


def test_reading_grade_over_the_limit_is_a_warning(tree: ContentTree) -> None:
    body = (
        "\nPsychoeducational interventions substantially ameliorate comorbid psychopathology, "
        "notwithstanding considerable interindividual heterogeneity regarding therapeutic responsiveness "
        "and motivational characteristics.\n"
    )
    path = tree.snippet("hard", body=body)
    problem = only(tree.load().problems, lambda p: "reading grade" in p.message)
    assert problem.severity is Severity.WARNING
    assert problem.line == line_of(path, "Psychoeducational")
    assert not tree.load(grade_limit=99).problems


def test_empty_messages_and_stray_text(tree: ContentTree) -> None:
    path = tree.snippet("empty", body="\nOne.\n\n---\n\n---\n\nTwo.\n")
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert problem.line == line_of(path, "---", occurrence=1)
    assert "no message between" in problem.message


def test_a_broken_file_does_not_hide_the_others(tree: ContentTree) -> None:
    tree.snippet("good")
    tree.snippet("bad", topic="nonsense")
    result = tree.load()
    assert [i.id for i in result.library] == ["good"]


def test_not_utf8(tree: ContentTree) -> None:
    path = tree.root / "en" / "psychoeducation" / "latin1.md"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'+++\nid = "latin1"\ntitle = "Caf\xe9"\n+++\n')
    problem = only(tree.load().problems, lambda p: p.is_error)
    assert (problem.path, problem.line) == (path, 3)
    assert "UTF-8" in problem.message


def test_check_content_and_main_exit_codes(tree: ContentTree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.snippet("fine")
    assert check_content(tree.root) == []
    assert main([str(tree.root)]) == 0

    tree.exercise("warn-only")
    tree.snippet("fine", locale="es", title="Bien")  # the exercise is now untranslated: a warning
    assert main([str(tree.root)]) == 0

    bad = tree.snippet("broken", autor="x")
    assert main([str(tree.root)]) == 1
    out = capsys.readouterr().out
    assert f"{line_of(bad, 'autor')}: error: unknown key 'autor'" in out
    assert "warning: not translated" in out
