"""Instrument files are checked like the rest of the content: each mistake an author can make is
reported with its file and line and what to do, by the loader and by `iopbot content check`; a new
instrument is a file, no code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.content.check import main as content_check
from bot.content.instruments import InstrumentContentError, check_instruments, load_instruments
from bot.services.instruments.scoring import score

REPO = Path(__file__).resolve().parents[2]
PHQ9 = (REPO / "content" / "en" / "instruments" / "phq9.toml").read_text(encoding="utf-8")


def _write(root: Path, locale: str, name: str, text: str) -> Path:
    path = root / locale / "instruments" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str, after: str = "") -> int:
    start = text.index(after) if after else 0
    return text[:text.index(needle, start)].count("\n") + 1


def _errors(root: Path) -> list[str]:
    return [str(p) for p in check_instruments(root)[1] if p.is_error]


@pytest.mark.parametrize(("change", "needle", "after", "message"), [
    (("max = 9\n", "max = 8\n"), "min = 10", "", "band 'moderate': min = 10 but it must start at 9"),
    (("max = 27\n", "max = 26\n"), "max = 26", "", "the highest possible total is 27"),
    (('safety_items = ["phq9_9"]', "safety_items = []"), "safety_items = []", "",
     "phq9 must list its item 'phq9_9' in safety_items"),
    (('{ value = 3, label = "Nearly every day" }', '{ value = "3", label = "Nearly every day" }'), "options = [",
     "", "option value '3' must be a whole number"),
    (('id = "phq9_5"', 'id = "phq9_4"'), 'id = "phq9_4"', "little energy", "item id 'phq9_4' is used twice"),
    (('text = "Poor appetite or overeating"', 'txt = "Poor appetite or overeating"'), "txt =", "",
     "unknown key 'txt' in an item"),
    (('label = "Mild"', 'label = ""'), 'label = ""', "", "band 'mild': 'label' must be non-empty text"),
    (('scoring = "sum"', 'scoring = "average"'), 'scoring = "average"', "", "'scoring' must be \"sum\""),
])
def test_mistakes_are_reported_with_file_and_line(tmp_path: Path, change: tuple[str, str], needle: str,
                                                  after: str, message: str) -> None:
    text = PHQ9.replace(*change, 1)
    assert text != PHQ9
    path = _write(tmp_path, "en", "phq9", text)
    expected = f"{path}:{_line_of(text, needle, after)}: error: "
    errors = _errors(tmp_path)
    assert any(e.startswith(expected) and message in e for e in errors), (expected, message, errors)
    with pytest.raises(InstrumentContentError, match="phq9"):
        load_instruments(tmp_path, ("phq9",))


def test_broken_toml_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "en", "phq9", PHQ9.replace('title = "PHQ-9"', 'title = "PHQ-9', 1))
    assert _errors(tmp_path) == [f"{path}:{_line_of(PHQ9, 'title =')}: error: not valid TOML: "
                                 f"{_errors(tmp_path)[0].split('not valid TOML: ')[1]}"]


def test_a_translation_must_score_the_same(tmp_path: Path) -> None:
    _write(tmp_path, "en", "phq9", PHQ9)
    spanish = (REPO / "content" / "es" / "instruments" / "phq9.toml").read_text(encoding="utf-8")
    changed = spanish.replace('{ value = 3, label = "Casi', '{ value = 4, label = "Casi')
    changed = changed.replace("max = 27", "max = 36")
    path = _write(tmp_path, "es", "phq9", changed)
    errors = _errors(tmp_path)
    first_item = _line_of(changed, "[[items]]")
    assert any(e.startswith(f"{path}:{first_item}:")
               and "must offer the same option values as English (0, 1, 2, 3)" in e for e in errors), errors
    found, _ = check_instruments(tmp_path)
    assert "phq9" not in found.get("es", {})  # English is used until the translation is fixed


def test_iopbot_content_check_reports_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "en", "phq9", PHQ9.replace("max = 9\n", "max = 8\n", 1))
    assert content_check([str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert f"{path}:{_line_of(PHQ9, 'min = 10')}: error: band 'moderate'" in out.out
    assert "content check FAILED" in out.err


def test_a_new_instrument_is_a_file(tmp_path: Path) -> None:
    """An author adds a two-item screener (PHQ-2) without code: loaded, run and scored by item id."""
    shutil.copytree(REPO / "content" / "en" / "instruments", tmp_path / "en" / "instruments")
    phq2 = PHQ9.split("[[items]]")[0].replace('id = "phq9"', 'id = "phq2"').replace('title = "PHQ-9"',
                                                                                   'title = "PHQ-2"')
    phq2 = phq2.replace('safety_items = ["phq9_9"]', "")
    phq2 += '''
[[items]]
id = "phq2_1"
text = "Little interest or pleasure in doing things"

[[items]]
id = "phq2_2"
text = "Feeling down, depressed, or hopeless"

[[bands]]
id = "negative"
min = 0
max = 2
label = "Below the cut-off"
explanation = "Your care team sees your answers."

[[bands]]
id = "positive"
min = 3
max = 6
label = "At or above the cut-off"
explanation = "Your care team sees your answers and will talk them over with you."
'''
    _write(tmp_path, "en", "phq2", phq2)
    content = load_instruments(tmp_path, ("phq2", "phq9"))
    instrument = content.get("phq2", "es")  # no Spanish: English is used
    result = score(instrument, {"phq2_2": 2.0, "phq2_1": 1.0})
    assert result is not None and (result.total, result.band.id, result.highest) == (3, "positive", 6)
