"""The time rules of daily messages, without a database: DST gaps and overlaps, odd offsets,
quiet hours that wrap midnight, and a stable jitter."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from bot.services.local_time import in_quiet_hours, jitter_seconds, plan_daily, wall_time_to_utc

NY = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_time_in_the_spring_forward_gap_moves_forward() -> None:
    # 2026-03-08: New York clocks jump from 02:00 EST to 03:00 EDT; 02:30 does not exist.
    moved = wall_time_to_utc(date(2026, 3, 8), time(2, 30), NY)
    assert moved == utc(2026, 3, 8, 7, 30) and moved.astimezone(NY).strftime("%H:%M %Z") == "03:30 EDT"
    assert wall_time_to_utc(date(2026, 3, 7), time(9), NY) == utc(2026, 3, 7, 14)
    assert wall_time_to_utc(date(2026, 3, 8), time(9), NY) == utc(2026, 3, 8, 13)


def test_an_ambiguous_fall_back_time_is_taken_once_the_first_time() -> None:
    # 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    assert wall_time_to_utc(date(2026, 11, 1), time(1, 30), NY) == utc(2026, 11, 1, 5, 30)


def test_kolkata_and_chatham_offsets() -> None:
    assert wall_time_to_utc(date(2026, 3, 2), time(9), ZoneInfo("Asia/Kolkata")) == utc(2026, 3, 2, 3, 30)
    chatham = ZoneInfo("Pacific/Chatham")  # +13:45 in its summer, +12:45 in winter
    assert wall_time_to_utc(date(2026, 1, 15), time(9), chatham) == utc(2026, 1, 14, 19, 15)
    assert wall_time_to_utc(date(2026, 7, 15), time(9), chatham) == utc(2026, 7, 14, 20, 15)


def test_quiet_hours_may_wrap_midnight() -> None:
    night = (time(22), time(7))
    assert in_quiet_hours(time(23, 30), *night) and in_quiet_hours(time(0, 0), *night)
    assert in_quiet_hours(time(6, 59), *night) and not in_quiet_hours(time(7, 0), *night)
    assert not in_quiet_hours(time(21, 59), *night)
    assert in_quiet_hours(time(13), time(12), time(14)) and not in_quiet_hours(time(14), time(12), time(14))
    assert not in_quiet_hours(time(3), time(0), time(0))  # start == end: no quiet hours


def test_defer_moves_to_the_end_of_quiet_hours_and_skip_drops_the_day() -> None:
    late = plan_daily(date(2026, 3, 2), "23:30", "America/New_York", "22:00", "07:00", "defer", 0)
    assert late.intended == utc(2026, 3, 3, 4, 30) and late.deferred
    assert late.due == utc(2026, 3, 3, 12)  # 07:00 the next morning, New York
    early = plan_daily(date(2026, 3, 2), "06:30", "America/New_York", "22:00", "07:00", "defer", 0)
    assert early.due == utc(2026, 3, 2, 12)  # 07:00 the same morning
    skipped = plan_daily(date(2026, 3, 2), "23:30", "America/New_York", "22:00", "07:00", "skip", 0)
    assert skipped.skipped and skipped.intended == utc(2026, 3, 3, 4, 30)
    fine = plan_daily(date(2026, 3, 2), "09:00", "America/New_York", "22:00", "07:00", "skip", 0)
    assert fine.due == fine.intended == utc(2026, 3, 2, 14)


def test_jitter_is_stable_small_and_never_early() -> None:
    offsets = [jitter_seconds(pid, 5.0) for pid in range(1, 2001)]
    assert all(0 <= o < 300 for o in offsets)
    assert len(set(offsets)) > 250  # spread over the five minutes
    assert jitter_seconds(42, 5.0) == jitter_seconds(42, 5.0) and jitter_seconds(42, 0) == 0
    planned = plan_daily(date(2026, 3, 2), "09:00", "America/New_York", "22:00", "07:00", "defer", 123)
    assert planned.intended == utc(2026, 3, 2, 14) and planned.due == utc(2026, 3, 2, 14, 2, 3)
    # A jitter that would cross into quiet hours is deferred like the time itself.
    edge = plan_daily(date(2026, 3, 2), "21:58", "America/New_York", "22:00", "07:00", "defer", 240)
    assert edge.due == utc(2026, 3, 3, 12, 4)
