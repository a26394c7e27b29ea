"""Reading grade: Flesch-Kincaid for English, Szigriszt-Pazos converted to a grade for Spanish."""

from __future__ import annotations

import pytest

from bot.content.readability import _syllables_en, _syllables_es, ease_to_grade, reading_grade


@pytest.mark.parametrize(
    ("word", "count"),
    [("cat", 1), ("makes", 1), ("boxes", 2), ("wanted", 2), ("table", 2), ("beautiful", 3), ("breathing", 2)],
)
def test_english_syllables(word: str, count: int) -> None:
    assert _syllables_en(word) == count


@pytest.mark.parametrize(
    ("word", "count"),
    [
        ("día", 2),
        ("ciudad", 2),
        ("poeta", 3),
        ("leer", 2),
        ("que", 1),
        ("hoy", 1),
        ("y", 1),
        ("respiración", 4),
    ],
)
def test_spanish_syllables(word: str, count: int) -> None:
    assert _syllables_es(word) == count


def test_flesch_kincaid_formula() -> None:
    # 9 words, 2 sentences, 10 syllables: 0.39 * 4.5 + 11.8 * 10/9 - 15.59
    result = reading_grade("The cat sat on the mat. It was happy.", "en")
    assert result is not None
    assert (result.words, result.sentences, result.syllables) == (9, 2, 10)
    assert result.grade == pytest.approx(0.39 * 4.5 + 11.8 * 10 / 9 - 15.59, abs=0.05)


def test_hard_text_is_graded_high_in_both_languages() -> None:
    english = reading_grade(
        "Psychoeducational interventions substantially ameliorate comorbid psychopathology, notwithstanding "
        "considerable interindividual heterogeneity.",
        "en",
    )
    spanish = reading_grade(
        "Las intervenciones psicoeducativas mejoran considerablemente la psicopatología comórbida, "
        "independientemente de la heterogeneidad interindividual.",
        "es",
    )
    assert english is not None and english.grade > 12
    assert spanish is not None and spanish.grade > 12 and spanish.reading_ease is not None


def test_plain_spanish_is_under_grade_8() -> None:
    result = reading_grade("Respira despacio. Nota tus pies en el piso. Puedes parar cuando quieras.", "es")
    assert result is not None and result.grade <= 8 and result.reading_ease is not None
    assert result.reading_ease >= 65


def test_ease_to_grade_is_monotonic_and_anchored() -> None:
    assert ease_to_grade(65) == pytest.approx(8.0)  # INFLESZ "bastante fácil" begins: the default limit
    assert ease_to_grade(90) == 5 and ease_to_grade(110) == 4 and ease_to_grade(-20) == 18
    grades = [ease_to_grade(e) for e in range(100, -1, -5)]
    assert grades == sorted(grades)


def test_unsupported_locale_and_empty_text() -> None:
    assert reading_grade("Bonjour tout le monde.", "fr") is None
    assert reading_grade("1, 2, 3.", "en") is None
