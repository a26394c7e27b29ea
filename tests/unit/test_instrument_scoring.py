"""PHQ-9 and GAD-7 as shipped: scored by item id and option value at every band edge, in English
and Spanish alike; PHQ-9 item 9 above 0 is urgent whatever the total; the settings are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.content.instruments import Instrument, check_instruments
from bot.safety.levels import Category, Level
from bot.services.instruments.scoring import assess, score

REPO = Path(__file__).resolve().parents[2]
FOUND, PROBLEMS = check_instruments(REPO / "content")

PHQ9_BANDS = [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
              (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"), (27, "severe")]
GAD7_BANDS = [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
              (15, "severe"), (21, "severe")]


def answers_totalling(instrument: Instrument, total: int, *, keep_zero: str | None = None) -> dict[str, object]:
    """Answers (as the flow stores them: floats) that add up to `total`, filled from the first item;
    `keep_zero` leaves one item at 0."""
    answers: dict[str, object] = {}
    left = total
    for item in instrument.items:
        value = 0 if item.id == keep_zero else min(3, left)
        answers[item.id] = float(value)
        left -= value
    assert left == 0, f"{total} is not reachable"
    return answers


def test_the_shipped_instruments_have_no_problems() -> None:
    assert [str(p) for p in PROBLEMS] == []
    assert set(FOUND["en"]) == set(FOUND["es"]) == {"phq9", "gad7"}


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize(("total", "band"), PHQ9_BANDS)
def test_phq9_band_edges(locale: str, total: int, band: str) -> None:
    phq9 = FOUND[locale]["phq9"]
    result = score(phq9, answers_totalling(phq9, total))
    assert result is not None and (result.total, result.band.id, result.highest) == (total, band, 27)


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize(("total", "band"), GAD7_BANDS)
def test_gad7_band_edges(locale: str, total: int, band: str) -> None:
    gad7 = FOUND[locale]["gad7"]
    result = score(gad7, answers_totalling(gad7, total))
    assert result is not None and (result.total, result.band.id, result.highest) == (total, band, 21)


def test_scoring_is_by_item_id_never_by_order_or_words() -> None:
    en, es = FOUND["en"]["phq9"], FOUND["es"]["phq9"]
    answers = {f"phq9_{n}": float(n % 4) for n in range(9, 0, -1)}  # any order
    in_english, in_spanish = score(en, answers), score(es, answers)
    assert in_english is not None and in_spanish is not None
    assert (in_english.total, in_english.band.id) == (in_spanish.total, in_spanish.band.id) == (13, "moderate")
    extra = score(en, {**answers, "phq9_10": 3.0, "mood": 9})  # answers that are not items do not count
    assert extra is not None and extra.total == 13


@pytest.mark.parametrize("missing", [{"phq9_4": None}, {"phq9_4": 7.0}, {"phq9_4": "often"}])
def test_no_score_without_a_valid_answer_to_every_item(missing: dict[str, object]) -> None:
    phq9 = FOUND["en"]["phq9"]
    answers = {**answers_totalling(phq9, 12), **missing}
    assert score(phq9, answers) is None


@pytest.mark.parametrize("item9", [1.0, 2.0, 3.0, "sometimes"])
def test_phq9_item9_above_zero_is_urgent_whatever_the_total(item9: object) -> None:
    phq9 = FOUND["en"]["phq9"]
    answers = {**{f"phq9_{n}": 0.0 for n in range(1, 9)}, "phq9_9": item9}
    result = assess(phq9, answers)
    assert result.level == Level.URGENT and Category.SUICIDE in result.categories
    assert result.reasons == ("trigger:phq9_item9",)
    if isinstance(item9, float):
        minimal = score(phq9, answers)
        assert minimal is not None and minimal.band.id == "minimal"  # a total of 1-3: still urgent


def test_phq9_item9_at_zero_and_gad7_are_no_trigger_even_at_the_top() -> None:
    phq9, gad7 = FOUND["en"]["phq9"], FOUND["en"]["gad7"]
    assert assess(phq9, answers_totalling(phq9, 24, keep_zero="phq9_9")).level == Level.NONE
    assert assess(phq9, {"phq9_1": 3.0}).level == Level.NONE  # item 9 not answered yet
    assert assess(gad7, answers_totalling(gad7, 21)).level == Level.NONE


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "expected"), [
    ('[instruments]\nday = "lunes"\n', "[instruments] day must be one of monday"),
    ('[instruments]\nask = []\n', "[instruments] ask is empty"),
    ('[instruments]\nask = ["phq9", "phq9"]\n', "[instruments] ask names a questionnaire twice"),
    ('[instruments]\nask = ["PHQ-9"]\n', "[instruments] ask: each must be a file name"),
    ("[instruments]\nevery_weeks = 0\n", "[instruments] every_weeks must be a whole number from 1 to 8, not 0"),
])
def test_instrument_settings_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_config(tmp_path, text), env={})
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_instruments_can_be_turned_off_and_moved(tmp_path: Path) -> None:
    s = load_settings(_config(tmp_path, '[instruments]\nenabled = false\nask = []\nday = "thursday"\n'), env={})
    assert (s.instruments.enabled, s.instruments.day) == (False, "thursday")
    shipped = load_settings(REPO / "config.toml", env={}).instruments
    assert (shipped.enabled, shipped.ask, shipped.day, shipped.every_weeks) == (True, ("phq9", "gad7"), "monday", 1)
