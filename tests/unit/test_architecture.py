"""The house rules, checked on every run (docs/ARCHITECTURE.md): the core knows nothing of
Telegram and each layer imports only from below (import-linter contracts in pyproject.toml), no
import cycles anywhere in bot/ (imports inside functions included), and ruff and mypy report
nothing on bot/. A broken rule fails here with the offending modules or lines named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def import_cycles(package: str) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan's strongly
    connected components). Imports only made for type checking are left out: they never run."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)  # never stale
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_module_in_bot_imports_itself_round_a_loop() -> None:
    assert import_cycles("bot") == []


def test_the_cycle_check_finds_a_loop(tmp_path: Path, monkeypatch: object) -> None:
    # The check above could pass by finding nothing at all: show it finds a real loop.
    package = tmp_path / "loopy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from loopy import b\n")  # inside a function: still counts
    (package / "b.py").write_text("from loopy import a\n")
    (package / "c.py").write_text("from loopy import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert import_cycles("loopy") == [["loopy.a", "loopy.b"]]
    finally:
        sys.path.remove(str(tmp_path))


def test_the_import_contracts_hold() -> None:
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_ruff_reports_nothing_on_bot() -> None:
    result = _run(str(BIN / "ruff"), "check", "--no-cache", "bot")
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_reports_nothing_on_bot() -> None:
    result = _run(sys.executable, "-m", "mypy", "bot")
    assert result.returncode == 0, result.stdout[-4000:]
