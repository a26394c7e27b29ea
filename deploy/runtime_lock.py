#!/usr/bin/env python3
"""Print the runtime part of requirements.lock: what `pip install .` needs, without the test tools.

requirements.lock pins every package of iopbot and its `test` extra with their hashes (dev.py
installs it whole). A server or an image needs only the runtime part: the packages named in
pyproject.toml's [project] dependencies and everything they pull in, as the lock's own
`# via` comments record it. Entries are copied as they are, hashes and markers included, so
`pip install --require-hashes -r` checks every file exactly as it does for the whole lock.

    python3 deploy/runtime_lock.py > runtime.lock          # from the project's root
    python3 deploy/runtime_lock.py LOCK PYPROJECT > runtime.lock

Standard library only (it runs in the image's build stage before anything is installed).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503: one spelling for a package name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> list[tuple[str, list[str], set[str]]]:
    """Each entry of a uv/pip-compile lock: (name, its lines, the packages it is there for)."""
    entries: list[tuple[str, list[str], set[str]]] = []
    in_via = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace() and not line.startswith("#"):
            match = _NAME.match(line)
            if match is None:
                raise ValueError(f"not a requirement line: {line!r}")
            entries.append((normalize(match.group(1)), [line], set()))
            in_via = False
            continue
        if not entries:
            continue  # the lock's header comments
        _, lines, via = entries[-1]
        stripped = line.strip()
        if stripped.startswith("--hash=") or stripped.startswith("\\"):
            lines.append(line)
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                via.add(rest)
        elif in_via and stripped.startswith("#"):
            via.add(stripped.lstrip("#").strip())
    return [(name, lines, {_via_name(v) for v in via}) for name, lines, via in entries]


def _via_name(text: str) -> str:
    """`aiogram` -> "aiogram"; `iopbot (pyproject.toml)` -> "iopbot"; `-r requirements.in` kept as is."""
    match = _NAME.match(text)
    return normalize(match.group(1)) if match else text


def runtime_names(pyproject: dict[str, object], entries: list[tuple[str, list[str], set[str]]]) -> set[str]:
    """The runtime dependencies (pyproject's [project] dependencies) and, through `# via`, all that
    they need, repeated until nothing more is added."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    needed = {normalize(str(_NAME.match(req).group(1))) for req in project["dependencies"]}  # type: ignore[union-attr]
    changed = True
    while changed:
        changed = False
        for name, _, via in entries:
            if name not in needed and via & needed:
                needed.add(name)
                changed = True
    return needed


def runtime_lock(lock_text: str, pyproject_text: str) -> str:
    entries = parse_lock(lock_text)
    needed = runtime_names(tomllib.loads(pyproject_text), entries)
    missing = needed - {name for name, _, _ in entries}
    if missing:
        raise SystemExit(f"requirements.lock has no entry for {', '.join(sorted(missing))}: "
                         "run `python3 dev.py lock` and commit the lock")
    header = "# The runtime part of requirements.lock (deploy/runtime_lock.py): no test tools.\n"
    return header + "".join("\n".join(lines) + "\n" for name, lines, _ in entries if name in needed)


def main(argv: list[str]) -> int:
    lock = Path(argv[0]) if argv else ROOT / "requirements.lock"
    pyproject = Path(argv[1]) if len(argv) > 1 else ROOT / "pyproject.toml"
    sys.stdout.write(runtime_lock(lock.read_text(encoding="utf-8"), pyproject.read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
