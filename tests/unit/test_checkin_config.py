"""Settings of the check-in schedule: bad values stop the start with the key named."""

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_shipped_defaults() -> None:
    s = load_settings(REPO / "config.toml", env={})
    assert (s.schedule.quiet_hours_policy, s.schedule.jitter_minutes, s.schedule.plan_days) == ("defer", 5.0, 2)
    assert (s.checkin.expire_hours, s.checkin.nudge_after_hours, s.checkin.notify_after_misses) == (12.0, 3.0, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[schedule]\nquiet_hours_policy = "later"\n', 'quiet_hours_policy must be "defer" or "skip"'),
        ("[schedule]\njitter_minutes = 90.0\n", "jitter_minutes must be a number from 0 to 60, not 90"),
        ("[checkin]\nexpire_hours = 30.0\n", "expire_hours must be a number greater than 0 and at most 24, not 30"),
        ("[checkin]\nnudge_after_hours = 12.0\n", "nudge_after_hours must be 0 (no nudge) or less than expire_hours"),
        ("[checkin]\nnotify_after_misses = -1\n", "notify_after_misses must be a whole number from 0 (never) to 30, not -1"),
        ('[checkin]\nquestionnaire = "Daily.toml"\n', "questionnaire must be a file name without .toml"),
    ],
)
def test_bad_checkin_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert expected in str(err.value)
