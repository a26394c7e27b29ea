"""The `iopbot` command, one module per command group (bot/cli/iopbot.py lists them and builds the
parser). Every subcommand takes --config PATH (default ./config.toml).

Importing this package is cheap: the command modules import their services, the runtime, aiogram
or the sandbox inside the handler that needs them, so `iopbot invite`, `doctor` or `sessions` never
pay for Telegram. tests/unit/test_cli_imports.py keeps it so."""

import os

# The semantic layer's matrix products are small: one BLAS thread each, on the layer's own thread,
# beats OpenBLAS waking a thread per core for each (and leaves the other core to the event loop).
# Must be set before NumPy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bot.cli.iopbot import main

__all__ = ["main"]
