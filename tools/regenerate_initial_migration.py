"""Developer tool: regenerate migration 0001 from the models (only until the first release).

Once a database exists in the field, never edit 0001 again: add a new migration with
`alembic revision --autogenerate` instead.
"""

import tempfile
from pathlib import Path

from alembic import command

from bot.db.engine import MIGRATIONS_DIR, alembic_config

for old in (MIGRATIONS_DIR / "versions").glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite+aiosqlite:///{Path(tmp) / 'gen.db'}"
    command.revision(alembic_config(url), message="initial schema", autogenerate=True, rev_id="0001")
