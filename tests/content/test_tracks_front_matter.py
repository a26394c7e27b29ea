"""Tracks and weeks in the front matter, and how the daily read picks by them (#15 item 8).

`tracks` is optional (absent: every track) and names only the program's tracks (`[content]
tracks`, or the starter ones while none are configured); `week` is 1–52. The check reports a bad
one with its file and line and, for a track, the list to pick from. The pick itself is a pure
function of the library, the participant's track, their program week and what they had.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.content.check import check_content
from bot.content.check import main as check_main
from bot.content.library import Library, load_library
from bot.content.model import STARTER_TRACKS, known_tracks
from bot.db.models import Participant
from bot.services.learning.drip import drip_track, pick_snippet
from tests.content.builders import SHIPPED, ContentTree, line_of

PROGRAM = ("mood", "substance_use", "dual")


@pytest.fixture
def tree(tmp_path: Path) -> ContentTree:
    return ContentTree(tmp_path / "content")


def _errors(problems: list) -> list:  # type: ignore[type-arg]
    return [p for p in problems if p.is_error]


# --- the front matter --------------------------------------------------------------------------------

def test_tracks_may_be_left_out_and_then_mean_every_track(tree: ContentTree) -> None:
    tree.snippet("general", tracks=None, week=None)
    tree.snippet("cravings", tracks=["substance_use"], week=2)
    result = tree.load()
    assert _errors(result.problems) == []
    general, cravings = result.library.snippet("general", "en"), result.library.snippet("cravings", "en")
    assert general is not None and cravings is not None
    assert general.meta.tracks == () and general.meta.week is None
    assert general.meta.for_track("mental_health") and general.meta.for_track(None)
    assert cravings.meta.tracks == ("substance_use",) and cravings.meta.week == 2
    assert cravings.meta.for_track("substance_use") and not cravings.meta.for_track("mental_health")


def test_an_unknown_track_is_an_error_with_its_line_and_the_programs_list(tree: ContentTree) -> None:
    path = tree.snippet("typo", tracks=["substance-use"])
    problems = _errors(check_content(tree.root, tracks=PROGRAM))
    assert [(p.path, p.line) for p in problems] == [(path, line_of(path, "tracks ="))]
    message = problems[0].message
    assert "unknown track 'substance-use'" in message and "did you mean 'substance_use'" in message
    assert "mood, substance_use, dual" in message and "[content] tracks" in message
    assert f"{path}:{line_of(path, 'tracks =')}: error: unknown track" in str(problems[0])


def test_without_configured_tracks_the_starter_tracks_are_the_list(tree: ContentTree) -> None:
    ok = tree.snippet("starter", tracks=["mental_health"])
    bad = tree.snippet("mood-only", tracks=["mood"])
    problems = _errors(check_content(tree.root))
    assert [p.path for p in problems] == [bad]
    assert "mental_health, substance_use" in problems[0].message
    assert set(known_tracks(())) == set(STARTER_TRACKS) and known_tracks(PROGRAM) == PROGRAM
    # The program's own list replaces the starter one: now the starter name is the unknown one.
    assert [p.path for p in _errors(check_content(tree.root, tracks=PROGRAM))] == [ok]
    # A file with an error is not delivered.
    assert tree.load().library.snippet("mood-only", "en") is None


@pytest.mark.parametrize(("value", "expected"), [
    ([], "tracks is empty"),
    ("substance_use", "must be a list of texts"),
    ([1], "must be a list of texts"),
])
def test_a_malformed_tracks_line_is_an_error(tree: ContentTree, value: object, expected: str) -> None:
    path = tree.snippet("bad-tracks", tracks=value)
    problems = _errors(check_content(tree.root))
    assert [(p.path, p.line) for p in problems] == [(path, line_of(path, "tracks ="))]
    assert expected in problems[0].message


@pytest.mark.parametrize("week", [0, 53, -1, "2", 1.5, True])
def test_week_must_be_a_whole_number_from_1_to_52(tree: ContentTree, week: object) -> None:
    path = tree.snippet("bad-week", week=week)
    problems = _errors(check_content(tree.root))
    assert [(p.path, p.line) for p in problems] == [(path, line_of(path, "week ="))]
    assert "whole number from 1 to 52" in problems[0].message


@pytest.mark.parametrize("week", [1, 52])
def test_week_1_and_52_are_fine(tree: ContentTree, week: int) -> None:
    tree.snippet("edge-week", week=week)
    assert _errors(check_content(tree.root)) == []


def test_a_configured_track_that_no_snippet_names_is_a_warning(tree: ContentTree) -> None:
    tree.snippet("cravings", tracks=["substance_use"])
    tree.snippet("general", tracks=None)
    problems = check_content(tree.root, tracks=PROGRAM)
    assert _errors(problems) == []
    assert sorted(p.message.split("'")[1] for p in problems if "no snippet names" in p.message) == ["dual", "mood"]


def test_a_translation_with_other_tracks_or_week_is_reported(tree: ContentTree) -> None:
    tree.snippet("cravings", tracks=["substance_use"], week=2)
    path = tree.snippet("cravings", locale="es", tracks=None, week=3)
    problems = [p for p in check_content(tree.root) if p.path == path]
    assert {p.message.split("'")[1] for p in problems} == {"tracks", "week"}


def test_the_shipped_library_names_only_starter_tracks_and_pairs_agree() -> None:
    problems = check_content(SHIPPED, tracks=STARTER_TRACKS)
    assert _errors(problems) == []
    assert not [p for p in problems if "differs from the English original" in p.message]
    library = load_library(SHIPPED, allow_drafts=False).library
    by_id = {s.id: s.meta for s in library.snippets("en")}
    # Cravings, relapse and overdose are for the substance-use track; general reads for everyone;
    # the introductions come in week 1.
    for item_id in ("what-cravings-are", "urges-come-and-go", "triggers-and-high-risk-situations",
                    "lapse-and-relapse", "overdose-and-naloxone"):
        assert by_id[item_id].tracks == ("substance_use",), item_id
    for item_id in ("stress-and-your-body", "reaching-out-for-help", "what-mindfulness-is"):
        assert by_id[item_id].tracks == () and by_id[item_id].week == 1, item_id
    for item_id, meta in by_id.items():
        spanish = library.snippet(item_id, "es")
        assert spanish is not None and spanish.locale == "es", item_id
        assert (spanish.meta.tracks, spanish.meta.week) == (meta.tracks, meta.week), item_id


def test_the_check_command_reads_the_tracks_from_the_config(tree: ContentTree, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    tree.snippet("mood-read", tracks=["mood"])
    assert check_main([str(tree.root), "--config", str(tmp_path / "absent.toml")]) == 1  # starter list
    assert "unknown track 'mood'" in capsys.readouterr().out
    config = tmp_path / "config.toml"
    config.write_text('[content]\ntracks = ["mood", "substance_use"]\n', encoding="utf-8")
    assert check_main([str(tree.root), "--config", str(config)]) == 0
    config.write_text('[content]\ntracks = ["Mood"]\n', encoding="utf-8")
    assert check_main([str(tree.root), "--config", str(config)]) == 2
    assert "[content] tracks" in capsys.readouterr().err


def test_configured_tracks_are_slugs_without_duplicates(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[content]\ntracks = ["mood", "mood"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="twice"):
        load_settings(config)
    config.write_text('[content]\ntracks = ["substance use"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[content\] tracks"):
        load_settings(config)
    config.write_text('[content]\ntracks = ["mood", "substance-use"]\n', encoding="utf-8")
    assert load_settings(config).content.tracks == ("mood", "substance-use")


# --- the pick --------------------------------------------------------------------------------------

@pytest.fixture
def library(tree: ContentTree) -> Library:
    """Week 1: a general read and one per track; week 2: a substance-use read and a general one;
    week 3: a mental-health read."""
    tree.snippet("w1-general", tracks=None, week=1, order=1)
    tree.snippet("w1-su", tracks=["substance_use"], week=1, order=2)
    tree.snippet("w1-mh", tracks=["mental_health"], week=1, order=3)
    tree.snippet("anytime", tracks=None, week=None, order=5)
    tree.snippet("w2-su", tracks=["substance_use"], week=2, order=1)
    tree.snippet("w2-general", tracks=None, week=2, order=2)
    tree.snippet("w3-mh", tracks=["mental_health"], week=3, order=1)
    result = tree.load()
    assert _errors(result.problems) == []
    return result.library


def _drip(library: Library, track: str | None, week: int, days: int = 10) -> list[str]:
    """What `days` daily reads would send in program week `week`, one after the other."""
    had: list[str] = []
    for _ in range(days):
        snippet = pick_snippet(library, "en", track, week, had)
        if snippet is None:
            break
        had.append(snippet.id)
    return had


def test_the_pick_follows_the_track_and_the_week_in_order(library: Library) -> None:
    assert _drip(library, "substance_use", 1) == ["anytime", "w1-general", "w1-su"]
    assert _drip(library, "mental_health", 1) == ["anytime", "w1-general", "w1-mh"]
    assert _drip(library, "substance_use", 2) == ["anytime", "w1-general", "w1-su", "w2-su", "w2-general"]
    assert _drip(library, "mental_health", 3) == ["anytime", "w1-general", "w1-mh", "w2-general", "w3-mh"]


def test_no_track_means_every_snippet_as_before_tracks(library: Library) -> None:
    everything = [s.id for s in library.snippets("en", up_to_week=3)]
    assert _drip(library, None, 3) == everything  # the order of the drip before tracks
    assert set(everything) == {"anytime", "w1-general", "w1-su", "w1-mh", "w2-su", "w2-general", "w3-mh"}


def test_never_a_repeat_and_nothing_when_the_track_runs_out(library: Library) -> None:
    # What they opened in /learn counts as had; another track's reads are not the fallback.
    had = {"anytime", "w1-general", "w1-su", "w1-mh"}
    assert pick_snippet(library, "en", "substance_use", 1, had) is None  # week 1 done: the day is skipped
    assert pick_snippet(library, "en", "mental_health", 2, had | {"w2-general"}) is None  # w2-su is not theirs
    # The next week brings more: first their own track's, then the general one.
    picked = pick_snippet(library, "en", "substance_use", 2, had)
    assert picked is not None and picked.id == "w2-su"
    # A track no file names (or one the program dropped) gets the reads for every track only.
    assert _drip(library, "dual", 3) == ["anytime", "w1-general", "w2-general"]


def test_a_track_changed_mid_program_catches_up_in_order_without_repeats(library: Library) -> None:
    had = _drip(library, "mental_health", 3)  # everything of the mental-health track by week 3
    assert [s.id for s in (pick_snippet(library, "en", "substance_use", 3, had),) if s] == ["w1-su"]


def test_the_drip_track_is_the_participants_only_while_the_program_has_tracks(settings: object) -> None:
    from bot.config import Settings
    from bot.context import AppContext

    assert isinstance(settings, Settings)
    person = Participant(alias="P-1", track="substance_use")
    off = AppContext(settings=settings, clock=None, texts=None, sessionmaker=None)  # type: ignore[arg-type]
    assert drip_track(off, person) is None  # no tracks configured: every snippet, as before
    on = AppContext(settings=settings.replace(content=dataclasses.replace(settings.content, tracks=PROGRAM)),
                    clock=None, texts=None, sessionmaker=None)  # type: ignore[arg-type]
    assert drip_track(on, person) == "substance_use"
    assert drip_track(on, Participant(alias="P-2", track=None)) is None
