"""Every migration is backward compatible for one version, so workers can be rolled one at a time
(README, zero-downtime deploy): `iopbot db upgrade` runs while the previous version's workers still
serve, and they must keep working on the new schema.

So an upgrade() only adds: new tables, new columns that are nullable or have a server default, new
indexes. It never drops or renames a table or a column, never makes a column NOT NULL and never
changes a column's type, because the running old version still reads and writes them. Removing
something is a later release's "contract" step, once no running version uses it: mark that call
with `# contract: unused since <revision>` and say so in the release notes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VERSIONS = Path(__file__).resolve().parents[2] / "bot" / "db" / "migrations" / "versions"
FORBIDDEN_CALLS = {"drop_table", "drop_column", "rename_table", "drop_table_comment"}
SQL_WORDS = ("DROP ", "RENAME ", "SET NOT NULL", "ALTER COLUMN")


def upgrade_calls(path: Path) -> list[tuple[int, str, ast.Call]]:
    """(line, method name, call) of every call inside upgrade()."""
    tree = ast.parse(path.read_text())
    upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    return sorted(((node.lineno, node.func.attr, node) for node in ast.walk(upgrade)
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)), key=lambda c: c[0])


def _is_false(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def breaking_changes(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    found = []
    for line, name, call in upgrade_calls(path):
        if "# contract:" in lines[line - 1]:
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        where = f"{path.name}:{line}"
        if name in FORBIDDEN_CALLS:
            found.append(f"{where}: {name} (the previous version still uses it)")
        elif name == "alter_column":
            for key in ("new_column_name", "type_"):
                if key in keywords:
                    found.append(f"{where}: alter_column {key}= (the previous version still uses the old one)")
            if _is_false(keywords.get("nullable")):
                found.append(f"{where}: alter_column nullable=False (the previous version's inserts fail)")
        elif name == "add_column":
            for column in (a for a in call.args if isinstance(a, ast.Call)):
                kw = {k.arg: k.value for k in column.keywords}
                if _is_false(kw.get("nullable")) and "server_default" not in kw:
                    found.append(f"{where}: a NOT NULL column without server_default (the previous version's "
                                 "inserts fail)")
        elif name == "execute":
            text = " ".join(a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
            for word in SQL_WORDS:
                if word in text.upper():
                    found.append(f"{where}: SQL with {word.strip()}")
    return found


MIGRATIONS = sorted(VERSIONS.glob("[0-9]*.py"))


@pytest.mark.parametrize("path", MIGRATIONS, ids=[p.stem for p in MIGRATIONS])
def test_every_upgrade_only_adds(path: Path) -> None:
    assert breaking_changes(path) == []


def test_the_policy_finds_breaking_changes(tmp_path: Path) -> None:
    bad = tmp_path / "9999_bad.py"
    bad.write_text(
        "def upgrade():\n"
        "    op.drop_column('staff', 'alias')\n"
        "    with op.batch_alter_table('staff') as batch_op:\n"
        "        batch_op.alter_column('alias', new_column_name='name')\n"
        "        batch_op.alter_column('role', nullable=False)\n"
        "        batch_op.add_column(sa.Column('x', sa.Integer(), nullable=False))\n"
        "        batch_op.add_column(sa.Column('y', sa.Integer(), server_default='0', nullable=False))\n"
        "        batch_op.add_column(sa.Column('z', sa.Integer(), nullable=True))\n"
        "    op.execute('ALTER TABLE staff DROP COLUMN alias')\n"
        "    op.drop_table('old_things')  # contract: unused since 0012\n"
        "def downgrade():\n"
        "    op.drop_table('staff')\n")
    found = breaking_changes(bad)
    assert [f.split(":")[1] for f in found] == ["2", "4", "5", "6", "9"], found
    assert len(MIGRATIONS) >= 14
