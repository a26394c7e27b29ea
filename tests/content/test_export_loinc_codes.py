"""The LOINC codes the FHIR export names PHQ-9 and GAD-7 by are data in the instrument files,
checked by `iopbot content check`: the shipped codes are LOINC's (panel, items in order, total,
answer list LL358-3) in English and Spanish alike, and a mistyped code is a warning with its file
and line and is left out, while the questionnaire is still asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.content.instruments import check_instruments, load_instruments, loinc_check_digit

REPO = Path(__file__).resolve().parents[2]
PHQ9 = (REPO / "content" / "en" / "instruments" / "phq9.toml").read_text(encoding="utf-8")
# loinc.org: PHQ-9 panel 44249-1 and GAD-7 panel 69737-5, their items in order and their totals.
SHIPPED = {
    "phq9": ("44249-1", "44261-6", ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
                                    "44253-3", "44260-8"]),
    "gad7": ("69737-5", "70274-6", ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]),
}
ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # Not at all … Nearly every day (0-3)


def _write(root: Path, locale: str, name: str, text: str) -> Path:
    path = root / locale / "instruments" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def test_the_shipped_instruments_carry_loinc_codes_in_every_language() -> None:
    found, problems = check_instruments(REPO / "content")
    assert [p for p in problems if "LOINC" in p.message or "loinc" in p.message] == []
    for locale in ("en", "es"):
        for instrument_id, (panel, total, items) in SHIPPED.items():
            instrument = found[locale][instrument_id]
            assert (instrument.loinc, instrument.loinc_total) == (panel, total)
            assert [i.loinc for i in instrument.items] == items and instrument.coded
            assert all([o.loinc for o in i.options] == ANSWERS for i in instrument.items)


def test_the_check_digit_is_loincs_mod_10() -> None:
    for code in ["44249-1", "44261-6", "69737-5", "70274-6", "8310-5", "100000-9",
                 *SHIPPED["phq9"][2], *SHIPPED["gad7"][2]]:
        number, digit = code.split("-")
        assert loinc_check_digit(number) == int(digit), code
    assert loinc_check_digit("44250") != 8


@pytest.mark.parametrize(("change", "needle", "message"), [
    (('loinc = "44250-9"', 'loinc = "44250-8"'), 'loinc = "44250-8"',
     "'loinc' = \"44250-8\" is not a LOINC code: its check digit would be 9 (\"44250-9\")"),
    (('loinc_total = "44261-6"', 'loinc_total = "PHQ9-total"'), 'loinc_total = "PHQ9-total"',
     "'loinc_total' must be a LOINC code in quotes"),
    (('loinc_answers = { 0 = "LA6568-5"', 'loinc_answers = { 7 = "LA6568-5"'), "loinc_answers =",
     "loinc_answers names the option value 7, which is not an option here"),
    (('1 = "LA6569-3"', '1 = "6569-3"'), "loinc_answers =", "the LOINC answer code of option 1 must look like"),
    (('loinc = "44255-8"', 'loinc = "44250-9"'), 'loinc = "44249-1"', "LOINC code 44250-9 is given to more than one"),
])
def test_a_wrong_code_is_a_warning_and_left_out(tmp_path: Path, change: tuple[str, str], needle: str,
                                                message: str) -> None:
    text = PHQ9.replace(*change, 1)
    assert text != PHQ9
    path = _write(tmp_path, "en", "phq9", text)
    found, problems = check_instruments(tmp_path)
    expected = f"{path}:{_line_of(text, needle)}: warning: "
    assert any(str(p).startswith(expected) and message in str(p) for p in problems), (expected, message,
                                                                                       [str(p) for p in problems])
    assert not any(p.is_error for p in problems)
    # Still asked: the code only names it for other systems.
    assert load_instruments(tmp_path, ("phq9",)).get("phq9", "en").id == "phq9"
    instrument = found["en"]["phq9"]
    if "more than one" in message:
        assert not instrument.coded  # the export names it locally until fixed
    else:
        assert change[1].split('"')[1] not in repr(instrument)  # the wrong code is nowhere


def test_a_translation_keeps_the_english_codes(tmp_path: Path) -> None:
    _write(tmp_path, "en", "phq9", PHQ9)
    spanish = (REPO / "content" / "es" / "instruments" / "phq9.toml").read_text(encoding="utf-8")
    changed = spanish.replace('loinc = "44252-5"', 'loinc = "44252-5"\n# moved', 1).replace(
        'loinc = "44253-3"', 'loinc = "44260-8"', 1).replace('loinc = "44260-8"\n\n[[bands]]',
                                                             'loinc = "44253-3"\n\n[[bands]]', 1)
    assert changed != spanish
    path = _write(tmp_path, "es", "phq9", changed)
    problems = [str(p) for p in check_instruments(tmp_path)[1]]
    assert any(p.startswith(f"{path}:") and "item 'phq9_8' must have the same LOINC codes as English" in p
               for p in problems), problems
