"""The `iopbot` command, one module per command group (bot/cli/iopbot.py lists them and builds the
parser). Every subcommand takes --config PATH (default ./config.toml).

Importing this package is cheap: the command modules import their services, the runtime, aiogram
or the sandbox inside the handler that needs them, so `iopbot invite`, `doctor` or `sessions` never
pay for Telegram. tests/unit/test_cli_imports.py keeps it so."""

from bot.cli.iopbot import main

__all__ = ["main"]
