"""Library look-ups: English fallback, listing by topic, track and week."""

from __future__ import annotations

from bot.content.model import Exercise, Snippet, Topic, Track
from tests.content.builders import ContentTree


def test_get_falls_back_to_english(tree: ContentTree) -> None:
    tree.snippet("both", title="Both")
    tree.snippet("both", locale="es", title="Ambos")
    tree.snippet("english-only", title="English only")
    library = tree.load().library
    assert library.get("both", "es").title == "Ambos"  # type: ignore[union-attr]
    assert library.get("both", "es-MX").title == "Ambos"  # type: ignore[union-attr]
    assert library.get("english-only", "es").locale == "en"  # type: ignore[union-attr]
    assert library.get("both", "fr").title == "Both"  # type: ignore[union-attr]
    assert library.get("missing", "en") is None


def test_typed_getters(tree: ContentTree) -> None:
    tree.snippet("read")
    tree.exercise("practice")
    library = tree.load().library
    assert isinstance(library.snippet("read", "en"), Snippet)
    assert library.exercise("read", "en") is None
    assert isinstance(library.exercise("practice", "en"), Exercise)


def test_listing_by_topic_track_and_week(tree: ContentTree) -> None:
    tree.snippet("w1-stress", topic="stress", week=1, order=2, title="B")
    tree.snippet("w1-coping", topic="coping", week=1, order=1, title="A")
    tree.snippet("w3-urges", topic="relapse_prevention", week=3, tracks=["substance_use"], title="C")
    tree.snippet("anytime", topic="coping", week=None, title="D")
    tree.snippet("w1-stress", locale="es", topic="stress", week=1, order=2, title="B es")
    tree.exercise("practice", topic="relaxation")
    library = tree.load().library

    assert [s.id for s in library.snippets("en")] == ["anytime", "w1-coping", "w1-stress", "w3-urges"]
    assert [s.id for s in library.snippets("en", topic=Topic.COPING)] == ["anytime", "w1-coping"]
    assert [s.id for s in library.snippets("en", topic="stress")] == ["w1-stress"]
    assert [s.id for s in library.snippets("en", track=Track.MENTAL_HEALTH)] == [
        "anytime",
        "w1-coping",
        "w1-stress",
    ]
    assert [s.id for s in library.snippets("en", week=3)] == ["w3-urges"]
    assert [s.id for s in library.snippets("en", up_to_week=1)] == ["anytime", "w1-coping", "w1-stress"]
    # Spanish: the translation where there is one, English otherwise.
    assert [(s.id, s.locale) for s in library.snippets("es", week=1)] == [
        ("w1-coping", "en"),
        ("w1-stress", "es"),
    ]
    assert [e.id for e in library.exercises("es", topic="relaxation", track="substance_use")] == ["practice"]
    assert library.exercises("en", topic="stress") == []
