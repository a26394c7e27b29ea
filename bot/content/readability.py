"""Reading grade of plain text, in US school grades, for English and Spanish.

English: Flesch-Kincaid grade = 0.39 * words/sentence + 11.8 * syllables/word - 15.59.

Spanish: Flesch-Kincaid's constants are fitted to English (Spanish words have more syllables, so it
would overstate the grade). We use the Szigriszt-Pazos perspicuity index, the Spanish adaptation
of Flesch reading ease that the INFLESZ scale reads (206.835 - 62.3 * syllables/word -
words/sentence; 100 easiest), and convert it to a grade through Flesch's reading-ease table
(90 -> grade 5, 80 -> 6, 70 -> 7, 60 -> 9, 50 -> 12, 30 -> 16), interpolating linearly. The default
limit of grade 8 thus means perspicuity of at least 65, where INFLESZ's "bastante fácil"
(fairly easy) begins.

Syllables are counted with heuristics (vowel groups with English silent endings; Spanish
diphthongs and hiatus). They are off by one now and then on single words and are close on a text.
Other locales are not graded (None).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# A sentence ends at . ! ? … and at a line break: list items and headings rarely end with a period.
_SENTENCE_SPLIT_RE = re.compile(r"[.!?¡¿…;]+|\n")


@dataclass(frozen=True)
class Readability:
    grade: float  # US school grade
    words: int
    sentences: int
    syllables: int
    reading_ease: float | None = None  # Szigriszt-Pazos perspicuity, for Spanish

    @property
    def method(self) -> str:
        return "Flesch-Kincaid" if self.reading_ease is None else "Szigriszt-Pazos (INFLESZ)"


_NOT_EN_LETTER_RE = re.compile(r"[^a-z]")
_KEEP_ES_RE = re.compile(r"(?:[sxz]|[cs]h|[cg])es$")
_KEEP_ED_RE = re.compile(r"[td]ed$")
_KEEP_E_RE = re.compile(r"[^aeiouy]le$")
_EN_VOWEL_GROUP_RE = re.compile(r"[aeiouy]+")


@lru_cache(maxsize=16384)  # texts repeat their words; counting is the slow part of grading
def _syllables_en(word: str) -> int:
    w = _NOT_EN_LETTER_RE.sub("", word.lower())
    if not w:
        return 0
    if len(w) <= 3:
        return 1
    # Silent endings: "makes", "named", "hope" (but "boxes", "wanted", "table" keep theirs).
    silent_es = w.endswith("es") and not _KEEP_ES_RE.search(w)
    silent_ed = w.endswith("ed") and not _KEEP_ED_RE.search(w)
    if silent_es or silent_ed:
        w = w[:-2]
    elif w.endswith("e") and not _KEEP_E_RE.search(w):
        w = w[:-1]
    w = w.removeprefix("y")
    return max(1, len(_EN_VOWEL_GROUP_RE.findall(w)))


_ES_STRONG = frozenset("aeoáéóíú")  # an accented i/u breaks a diphthong: "día" has two syllables
_ES_VOWELS = _ES_STRONG | frozenset("iuü")


@lru_cache(maxsize=16384)
def _syllables_es(word: str) -> int:
    w = word.lower()
    if w == "y":
        return 1
    if w.endswith("y"):  # "hoy", "muy": y is the tail of a diphthong
        w = w[:-1] + "i"
    count = 0
    prev = ""
    for ch in w:
        if ch in _ES_VOWELS:
            if not prev:
                count += 1  # a new vowel group
            elif ch in _ES_STRONG and prev in _ES_STRONG:
                count += 1  # hiatus: two strong vowels are two syllables ("le-er", "po-e-ta")
            prev = ch
        else:
            prev = ""
    return max(1, count)


def _count(text: str, syllables: Callable[[str], int]) -> tuple[int, int, int]:
    words = sentences = syl = 0
    for sentence in _SENTENCE_SPLIT_RE.split(text):
        found = _WORD_RE.findall(sentence)
        if found:
            sentences += 1
            words += len(found)
            syl += sum(syllables(w) for w in found)
    return words, sentences, syl


# (reading ease, grade) points of Flesch's table, from easy to hard.
_EASE_TO_GRADE = [
    (100.0, 4.0),
    (90.0, 5.0),
    (80.0, 6.0),
    (70.0, 7.0),
    (60.0, 9.0),
    (50.0, 12.0),
    (30.0, 16.0),
    (0.0, 18.0),
]


def ease_to_grade(ease: float) -> float:
    """US grade for a Flesch-style reading-ease score (linear between the table's points)."""
    if ease >= _EASE_TO_GRADE[0][0]:
        return _EASE_TO_GRADE[0][1]
    for (e_hi, g_hi), (e_lo, g_lo) in pairwise(_EASE_TO_GRADE):
        if ease >= e_lo:
            return g_hi + (e_hi - ease) * (g_lo - g_hi) / (e_hi - e_lo)
    return _EASE_TO_GRADE[-1][1]


def reading_grade(text: str, locale: str) -> Readability | None:
    """The reading grade of `text`, or None when it has no words or the locale is not supported."""
    language = locale.split("-")[0].lower()
    if language == "en":
        words, sentences, syl = _count(text, _syllables_en)
        if not words:
            return None
        grade = 0.39 * words / sentences + 11.8 * syl / words - 15.59
        return Readability(round(grade, 1), words, sentences, syl)
    if language == "es":
        words, sentences, syl = _count(text, _syllables_es)
        if not words:
            return None
        ease = 206.835 - 62.3 * syl / words - words / sentences
        return Readability(round(ease_to_grade(ease), 1), words, sentences, syl, round(ease, 1))
    return None
