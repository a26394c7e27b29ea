"""`[telegram] mode` names a process's role, as `iopbot run --mode` does: "worker" (the schedule
only) is one of them, and a wrong value lists the allowed ones."""

from pathlib import Path

import pytest

from bot.cli.run import MODES
from bot.config import TELEGRAM_MODES, ConfigError, load_settings
from bot.db.worker_models import WorkerMode


def test_worker_mode_is_accepted_in_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[telegram]\nmode = "worker"\n')
    assert load_settings(path, env={}).telegram.mode == "worker"


def test_a_wrong_mode_lists_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[telegram]\nmode = "scheduler"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    message = str(err.value)
    assert "[telegram] mode must be one of 'polling', 'webhook', 'worker'" in message
    assert "not 'scheduler'" in message


def test_config_cli_and_worker_roles_agree() -> None:
    assert set(TELEGRAM_MODES) == set(MODES) == {m.value for m in WorkerMode}
