"""[triggers] in config.toml: the thresholds of the structured check-in triggers. Bad values stop
the start with the key named; the configured values reach the check-in assessment."""

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.safety.levels import Level
from bot.safety.triggers import TriggerThresholds
from bot.services.checkins.service import assess_checkin

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_states_the_defaults_of_the_triggers() -> None:
    s = load_settings(REPO / "config.toml", env={})
    assert s.triggers == TriggerThresholds()
    assert (s.triggers.low_mood, s.triggers.high_craving) == (2, 8)
    assert (s.triggers.low_mood_run_days, s.triggers.low_mood_run_max) == (3, 3)


def test_a_program_can_change_the_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[triggers]\nlow_mood = 4\nhigh_craving = 6\nlow_mood_run_days = 0\n")
    t = load_settings(path, env={}).triggers
    assert t == TriggerThresholds(low_mood=4, high_craving=6, low_mood_run_days=0, low_mood_run_max=3)
    assert assess_checkin({"mood": 4}, [], t).level == Level.CONCERN
    assert assess_checkin({"mood": 4}, [], TriggerThresholds()).level == Level.NONE
    assert assess_checkin({"craving": 6}, [], t).reasons == ("trigger:high_craving",)
    assert assess_checkin({"mood": 5}, [1, 1, 1], t).level == Level.NONE  # the run of low moods is off


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[triggers]\nlow_mood = 11\n", "[triggers] low_mood must be a whole number from 0 to 10, not 11"),
        ("[triggers]\nlow_mood = -1\n", "[triggers] low_mood must be a whole number from 0 to 10"),
        ("[triggers]\nhigh_craving = 0\n", "[triggers] high_craving must be a whole number from 1 to 10, not 0"),
        ("[triggers]\nlow_mood_run_days = 30\n", "[triggers] low_mood_run_days must be a whole number from 0 to 14"),
        ("[triggers]\nlow_mood_run_max = 12\n", "[triggers] low_mood_run_max must be a whole number from 0 to 10"),
        ("[triggers]\nlow_mood = 2.5\n", "[triggers].low_mood must be a whole number, not 2.5"),
        ('[triggers]\nhigh_craving = "8"\n', "[triggers].high_craving must be a whole number"),
        ("[triggers]\nlow_mod = 2\n", "[triggers]: unknown key 'low_mod'; known keys are: high_craving, low_mood"),
    ],
)
def test_bad_trigger_settings_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert expected in str(err.value)
