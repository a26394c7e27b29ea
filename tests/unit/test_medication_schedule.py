"""The pure rules of medication reminders: the times people type, the chosen weekdays, each dose's
time in UTC across both DST changes (New York: 8 March and 1 November 2026), and the length of a
run of missed doses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.services.medications.schedule import (
    ALL_DAYS,
    clean_name,
    days_from_text,
    days_to_text,
    missed_run,
    parse_times,
    planned_doses,
)

NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("typed", "times"), [
    ("08:00", ["08:00"]),
    ("08:00, 21:30", ["08:00", "21:30"]),
    ("21:30,8", ["08:00", "21:30"]),
    ("8am and 9:30 pm", ["08:00", "21:30"]),
    ("8:00 y 21.30", ["08:00", "21:30"]),
    ("9\n13\n21h", ["09:00", "13:00", "21:00"]),
    ("08:00, 08:00", ["08:00"]),
])
def test_times_are_read_as_timeparse_reads_them(typed: str, times: list[str]) -> None:
    assert parse_times(typed) == times


@pytest.mark.parametrize("typed", ["", "morning", "25:00", "8, later", "1,2,3,4,5,6,7", "13pm"])
def test_what_is_not_a_time_is_refused(typed: str) -> None:
    assert parse_times(typed) is None


def test_names_are_tidied_and_limited() -> None:
    assert clean_name("  morning   pill ") == "morning pill"
    assert clean_name("   ") is None
    assert clean_name("x" * 61) is None


def test_days_round_trip() -> None:
    assert days_to_text({0, 2, 4}) == "0,2,4"
    assert days_to_text(ALL_DAYS) == ""
    assert days_from_text("") == ALL_DAYS
    assert days_from_text("0,2,4") == {0, 2, 4}


def test_a_morning_dose_stays_at_eight_local_across_spring_forward() -> None:
    doses = planned_doses(7, ["08:00"], ALL_DAYS, NY, utc(2026, 3, 7, 12, 0), ahead_days=2)
    assert [(d.day.isoformat(), d.due) for d in doses] == [
        ("2026-03-07", utc(2026, 3, 7, 13, 0)),  # EST, UTC-5
        ("2026-03-08", utc(2026, 3, 8, 12, 0)),  # EDT from 02:00 that morning, UTC-4
        ("2026-03-09", utc(2026, 3, 9, 12, 0)),
    ]
    assert doses[0].key == "med:7:2026-03-07:0800"


def test_a_dose_in_the_gap_moves_forward_and_one_in_the_overlap_comes_once() -> None:
    gap = planned_doses(1, ["02:30"], ALL_DAYS, NY, utc(2026, 3, 8, 6, 0), ahead_days=0)  # 01:00 EST
    assert [d.due for d in gap] == [utc(2026, 3, 8, 7, 30)]  # 03:30 EDT
    overlap = planned_doses(1, ["01:30"], ALL_DAYS, NY, utc(2026, 11, 1, 4, 0), ahead_days=0)  # 00:00 EDT
    assert [d.due for d in overlap] == [utc(2026, 11, 1, 5, 30)]  # the first 01:30 (EDT), once
    evening = planned_doses(1, ["21:30"], ALL_DAYS, NY, utc(2026, 10, 31, 12, 0), ahead_days=1)
    assert [d.due for d in evening] == [utc(2026, 11, 1, 1, 30), utc(2026, 11, 2, 2, 30)]


def test_only_the_chosen_weekdays_and_only_what_is_still_ahead() -> None:
    monday_noon = utc(2026, 3, 2, 17, 0)  # 12:00 in New York
    doses = planned_doses(1, ["08:00", "21:30"], frozenset({0, 2}), NY, monday_noon, ahead_days=2)
    assert [(d.day.isoformat(), d.at) for d in doses] == [("2026-03-02", "21:30"), ("2026-03-04", "08:00"),
                                                          ("2026-03-04", "21:30")]
    assert planned_doses(1, ["08:00"], ALL_DAYS, "Not/AZone", monday_noon, ahead_days=2) == []


@pytest.mark.parametrize(("newest_first", "run"), [
    ([], 0),
    (["missed"], 1),
    (["missed", "missed", "missed"], 3),
    (["missed", "missed", "taken", "missed"], 2),
    (["taken", "missed", "missed", "missed"], 0),
    (["missed", "skipped", "missed"], 1),  # skipping is an answer, not silence
])
def test_missed_in_a_row(newest_first: list[str], run: int) -> None:
    assert missed_run(newest_first) == run
