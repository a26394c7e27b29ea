"""Every setting is checked when it is loaded, by every command.

The numeric test walks the settings dataclasses, so a numeric key added later is covered without
touching this file: NaN and infinity are refused everywhere, negative and zero wherever the key's
range does not allow them, each with one line that names the key and the bad value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from bot.cli import iopbot as cli
from bot.config import RANGES, SECTIONS, ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]
TOKEN = "123456:SECRET-token-never-shown"


def numeric_keys() -> list[tuple[str, str, bool, bool]]:
    """(section, key, whole, is_list) of every numeric setting, from the dataclasses themselves."""
    keys = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            annotation = hints[f.name]
            args = typing.get_args(annotation)[:1]
            if annotation in (int, float):
                keys.append((section, f.name, annotation is int, False))
            elif args in ((int,), (float,)):
                keys.append((section, f.name, args == (int,), True))
    return keys


BAD_NUMBERS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-1": -1, "0": 0}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_every_numeric_key_has_a_range() -> None:
    keys = numeric_keys()
    assert len(keys) >= 35  # the walk found the schema, not nothing
    missing = [f"[{s}] {k}" for s, k, _, _ in keys if (s, k) not in RANGES]
    assert not missing, f"numeric settings without an allowed range in bot/config.py RANGES: {missing}"
    stale = [key for key in RANGES if key not in {(s, k) for s, k, _, _ in keys}]
    assert not stale, f"ranges for settings that do not exist: {stale}"


@pytest.mark.parametrize("literal", list(BAD_NUMBERS))
@pytest.mark.parametrize(("section", "key", "whole", "is_list"), numeric_keys(),
                         ids=[f"{s}.{k}" for s, k, _, _ in numeric_keys()])
def test_bad_numbers_are_refused_with_one_line_naming_the_key(
        tmp_path: Path, section: str, key: str, whole: bool, is_list: bool, literal: str) -> None:
    value = BAD_NUMBERS[literal]
    toml_value = f"[{literal}]" if is_list else literal
    path = _write(tmp_path, f"[{section}]\n{key} = {toml_value}\n")
    bounds = RANGES[(section, key)]
    allowed = bounds.allows(value) and (not whole or float(value).is_integer())
    if allowed:
        load_settings(path, env={})  # zero where zero is documented ("0 = never" and the like)
        assert value == 0, f"[{section}] {key} accepted {literal}"
        return
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    message = str(err.value)
    assert "\n" not in message
    assert f"[{section}] {key}" in message or f"[{section}].{key}" in message, message
    assert literal in message, message


@pytest.mark.parametrize(("section", "key", "literal"), [
    ("escalation", "max_rounds", "0"),  # would open no alert at all
    ("escalation", "urgent_ack_minutes", "nan"),  # the page would never be sent
    ("escalation", "imminent_ack_minutes", "0"),
    ("sender", "per_chat_interval_seconds", "-1"),  # every send would fail, the crisis reply too
    ("sender", "per_chat_interval_seconds", "0"),  # division by zero in the per-chat bucket
    ("sender", "messages_per_second", "0"),
    ("schedule", "tick_seconds", "0"),
    ("schedule", "grace_minutes", "0"),  # everything would expire the moment it is due
    ("schedule", "batch_size", "0"),
    ("attendance", "notify_clinician_after", "0"),
    ("telegram", "webhook_listen_port", "0"),
])
def test_settings_that_would_silence_the_bot_are_refused(tmp_path: Path, section: str, key: str,
                                                          literal: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key} must be .*, not {literal}"):
        load_settings(_write(tmp_path, f"[{section}]\n{key} = {literal}\n"), env={})


@pytest.mark.parametrize(("text", "expected"), [
    ('[telegram]\napi_base = "api.telegram.org"\n', "[telegram] api_base must be a URL starting with http://"),
    ('[telegram]\napi_base = "ftp://x"\n', "[telegram] api_base must be a URL"),
    ('[telegram]\nwebhook_url = "http://bot.example.org/hook"\n', "[telegram] webhook_url must be a URL starting "
                                                                 "with https://"),
    ("[telegram]\nwebhook_listen_port = 70000\n", "[telegram] webhook_listen_port must be a whole number from 1 to "
                                                  "65535, not 70000"),
    ('[telegram]\nwebhook_path = "hook"\n', "[telegram] webhook_path must start with /"),
    ('[telegram]\nbot_username = "@my bot"\n', "[telegram] bot_username must be a Telegram username"),
    ('[llm]\nbase_url = "localhost:8000"\n', "[llm] base_url must be a URL"),
    ('[crisis.en]\nchat_url = "988lifeline.org/chat"\n', "[crisis.en] chat_url must be a URL"),
    ('[crisis.es]\ncall_or_text = ""\n', "[crisis.es] call_or_text must not be empty"),
    ('[enrollment]\ntimezone_buttons = []\n', "[enrollment] timezone_buttons must list at least one time zone"),
    ('[enrollment]\ntimezone_buttons = ["Mars/Olympus"]\n', "'Mars/Olympus' is not an IANA time zone"),
    ("[reminders]\noffsets_minutes = []\n", "[reminders] offsets_minutes must not be empty"),
    ("[reminders]\noffsets_minutes = [15, -5]\n",
     "[reminders] offsets_minutes: each element must be a whole number from 1 to 20160, not -5"),
    ('[program]\ndefault_locale = "fr"\n', "[program] default_locale must be one of en, es, not 'fr'"),
    ('[program]\nconsent_version = " "\n', "[program] consent_version must not be empty"),
    ('[program]\nafter_hours_phone = "call us"\n', "[program] after_hours_phone must be a phone number"),
    ('[database]\nurl = "mysql://u:hunter2@h/db"\n', "[database] url must start with sqlite:// or postgresql://"),
    ("[schedule]\ntick_seconds = 10.0\nlease_seconds = 5.0\n", "lease_seconds (5.0) must be longer than "
                                                              "tick_seconds (10.0)"),
    ("[sender]\nbackoff_base_seconds = 5.0\nbackoff_max_seconds = 1.0\n", "backoff_max_seconds (1.0) must not be "
                                                                         "less than backoff_base_seconds (5.0)"),
    ('[coverage]\nnotice_time = "8am"\n', "[coverage] notice_time must be a 24-hour time"),
    ('[discharge]\nalumni_checkin_time = "25:00"\n', "[discharge] alumni_checkin_time must be a 24-hour time"),
    ('[logging]\nlevel = "LOUD"\n', "[logging] level must be DEBUG, INFO, WARNING or ERROR, not 'LOUD'"),
])
def test_urls_ports_zones_lists_and_texts_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert "hunter2" not in str(err.value)


def test_the_shipped_config_loads() -> None:
    s = load_settings(REPO / "config.toml", env={})
    assert s.escalation.max_rounds == 3 and s.coverage.notice_time == "08:00"


@pytest.mark.parametrize("command", [
    ["doctor"], ["keys", "status"], ["participant", "discharge", "P-1"], ["run"], ["db", "upgrade"],
    ["report", "alerts"], ["invite", "staff", "--alias", "x", "--role", "lead"], ["content", "check"],
    ["schedule", "status"]])
def test_every_command_stops_with_one_line_and_never_shows_the_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        command: list[str]) -> None:
    # Before: an api_base without a scheme reached aiohttp, whose traceback printed the token in the URL.
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    path = _write(tmp_path, '[program]\nname = "X"\n[telegram]\napi_base = "api.telegram.org"\n')
    assert cli.main(["--config", str(path), *command]) == 2
    out = capsys.readouterr()
    assert TOKEN not in out.err + out.out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.err, out.err
    assert lines[0].startswith("config error:") and "[telegram] api_base" in lines[0]
    assert "'api.telegram.org'" in lines[0]


def test_run_refuses_a_program_without_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    path = _write(tmp_path, f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n')
    assert cli.main(["--config", str(path), "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[program] name is empty" in err and TOKEN not in err


def test_an_unforeseen_failure_is_one_line_and_the_log_redacts_the_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    path = _write(tmp_path, '[program]\nname = "X"\n')

    def boom(args: object) -> int:
        raise RuntimeError(f"request to https://api.telegram.org/bot{TOKEN}/getMe failed")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        action.choices["run"].set_defaults(func=boom)  # type: ignore[index]
    assert cli.main(["--config", str(path), "run"]) == 1
    err = capsys.readouterr().err
    assert TOKEN not in err and "[redacted]" in err
    assert err.strip().splitlines()[-1].startswith("error: RuntimeError")
