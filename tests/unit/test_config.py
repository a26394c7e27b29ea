from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_loads_and_secrets_come_from_environment() -> None:
    s = load_settings(REPO / "config.toml", env={"BOT_TOKEN": "1:abc", "DATABASE_URL": "postgres://u:p@h/db"})
    assert s.secrets.bot_token == "1:abc"
    assert s.database.url == "postgresql+asyncpg://u:p@h/db"
    assert s.crisis_for("es").call_or_text == "988"
    assert s.crisis_for("fr").emergency_number == "911"  # unknown locale falls back to English


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[sender]\nrate = 3\n", "[sender]: unknown key 'rate'"),
        ("[nonsense]\n", "unknown section [nonsense]"),
        ("[sender]\nmessages_per_second = \"fast\"\n", "[sender].messages_per_second must be a number"),
        ("[program]\ndefault_timezone = \"Mars/Base\"\n", "is not an IANA time zone"),
        ("[enrollment]\ndefault_checkin_time = \"9am\"\n", "default_checkin_time must be a 24-hour time"),
        ("[telegram]\nmode = \"webhook\"\n", "webhook_url is required"),
        ("[escalation]\nimminent_ack_minutes = 60.0\n", "must not be longer than urgent_ack_minutes"),
        ("[privacy]\nquote_in_alerts = \"yes\"\n", "quote_in_alerts must be true or false"),
        ("[sender\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), env={})
    assert expected in str(err.value)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "other.toml", env={})
