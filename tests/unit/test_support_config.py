"""[support] in config.toml (README "Configuration", "Support persons"): the weekly day and time,
the low score that tells the clinician, the invite's lifetime and how many per participant, each
checked with a message that names the key, and each used by the support services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, SupportSettings, load_settings
from bot.db.support_models import SupportPerson
from bot.services.support.checkins import next_week_slot

REPO = Path(__file__).resolve().parents[2]
ENV = {"BOT_TOKEN": "1:TEST"}


def _config(tmp_path: Path, lines: str) -> Path:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    start = text.index("[support]\n")
    end = text.index("\n\n", start)
    path = tmp_path / "config.toml"
    path.write_text(text[:start] + "[support]\n" + lines + text[end:], encoding="utf-8")
    return path


def test_the_shipped_config_keeps_the_behaviour_of_before() -> None:
    support = load_settings(REPO / "config.toml", env=ENV).support
    assert support == SupportSettings()
    assert (support.checkin_day, support.checkin_time, support.low_score, support.invite_days,
            support.max_per_participant) == ("joined", "18:00", 2, 7.0, 3)


@pytest.mark.parametrize(("line", "says"), [
    ('checkin_day = "someday"', '[support] checkin_day must be "joined"'),
    ('checkin_day = "Friday "', "[support] checkin_day"),
    ('checkin_time = "6pm"', '[support] checkin_time must be a 24-hour time like "18:00"'),
    ("low_score = 10", "[support] low_score must be a whole number from 0 to 9, not 10"),
    ("invite_days = 0", "[support] invite_days must be a number greater than 0"),
    ("max_per_participant = 0", "[support] max_per_participant must be a whole number from 1 to 10"),
    ("max_per_participant = 2.5", "[support].max_per_participant must be a whole number"),
    ("weekly = true", "[support]: unknown key 'weekly'"),
])
def test_a_wrong_value_is_named_with_what_is_allowed(tmp_path: Path, line: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(_config(tmp_path, line), env=ENV)
    assert says in str(raised.value)


def test_day_and_time_set_the_weekly_slot_in_the_support_persons_time_zone() -> None:
    joined = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York
    person = SupportPerson(timezone="America/New_York", consented_at=joined)
    # By default: the weekday they joined, at 18:00 their time, a week later.
    assert next_week_slot(person, joined, SupportSettings()) == datetime(2026, 3, 9, 22, 0, tzinfo=UTC)
    friday = SupportSettings(checkin_day="friday", checkin_time="09:30")
    first = next_week_slot(person, joined, friday)
    assert first == datetime(2026, 3, 13, 13, 30, tzinfo=UTC)  # never before six days after joining
    assert next_week_slot(person, first, friday) == first + timedelta(days=7)
