import pytest

from bot.services.timeparse import find_timezone, parse_local_time, parse_quiet_hours


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("9", "09:00"), ("9am", "09:00"), ("9:30 pm", "21:30"), ("21:30", "21:30"), ("21.30", "21:30"),
     ("21h", "21:00"), ("12am", "00:00"), ("12pm", "12:00"), ("25", None), ("13pm", None), ("soon", None),
     ("", None), ("9:75", None)],
)
def test_times_as_people_type_them(typed: str, expected: str | None) -> None:
    assert parse_local_time(typed) == expected


def test_quiet_hours_may_wrap_midnight() -> None:
    assert parse_quiet_hours("10pm - 7am") == ("22:00", "07:00")
    assert parse_quiet_hours("22 to 7") == ("22:00", "07:00")
    assert parse_quiet_hours("late") is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("America/Denver", "America/Denver"), ("denver", "America/Denver"), ("Mexico City", "America/Mexico_City"),
     ("Ciudad de México", "America/Mexico_City"), ("eastern", "America/New_York"), ("kolkata", "Asia/Kolkata"),
     ("Chatham", "Pacific/Chatham"), ("Atlantis", None), ("", None), ("x" * 300, None)],
)
def test_time_zones_by_name_or_city(typed: str, expected: str | None) -> None:
    assert find_timezone(typed) == expected
