"""The family reads (content/<locale>/family/) pass the checks snippets pass (front matter, reviewer,
length, reading grade, translations), cover the four topics in both languages, and leave the crisis
numbers to the program's settings."""

from __future__ import annotations

from pathlib import Path

from bot.services.support.family import load_family

CONTENT = Path(__file__).resolve().parents[2] / "content"
READS = ["supporting-recovery", "talking-about-relapse", "caring-for-yourself", "what-to-do-in-a-crisis"]


def test_family_reads_are_checked_and_translated() -> None:
    library = load_family(CONTENT)
    assert [str(p) for p in library.problems] == []
    for locale in ("en", "es"):
        assert [read.id for read in library.reads(locale)] == READS
    crisis = "\n".join(m.markdown for m in library.get("what-to-do-in-a-crisis", "en").messages)  # type: ignore[union-attr]
    assert "{emergency}" in crisis and "{crisis_line}" in crisis and "988" not in crisis and "911" not in crisis
