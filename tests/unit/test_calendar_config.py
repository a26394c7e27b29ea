"""[reminders] and [attendance] settings: defaults, and clear messages for wrong values."""

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_shipped_reminder_settings() -> None:
    s = load_settings(REPO / "config.toml", env={})
    assert s.reminders.offsets_minutes == (1440, 15) and s.reminders.quiet_hours_exempt_minutes == 60
    assert s.attendance.notify_clinician_after == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("[reminders]\noffsets_minutes = [\"1 day\"]\n", "[reminders].offsets_minutes must be a list of whole numbers"),
    ("[reminders]\noffsets_minutes = [15, 15]\n", "offsets_minutes must be different whole minutes greater than 0"),
    ("[reminders]\noffsets_minutes = [2880]\nplan_ahead_hours = 24\n", "plan_ahead_hours must cover the longest"),
    ("[attendance]\nnotify_clinician_after = 0\n", "notify_clinician_after must be a whole number from 1 to 50, not 0"),
])
def test_bad_reminder_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_settings(path, env={})
