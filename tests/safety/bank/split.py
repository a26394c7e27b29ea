"""Split the bank's written files into the tuning split (dev/) and the untouched 30% (holdout/).

The split is fixed by a hash of each message's id, decided before any rule was tuned on the bank:
a row is held out when sha256(id) mod 10 < 3. Rules are tuned on dev/ only; holdout/ is measured
and reported, never read while writing rules. Run once per newly written file:

    python tests/safety/bank/split.py tests/safety/bank/en_suicide.jsonl ...
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def held_out(row_id: str) -> bool:
    return int(hashlib.sha256(row_id.encode()).hexdigest(), 16) % 10 < 3


def split(path: Path) -> tuple[int, int]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    parts: dict[str, list[str]] = {"dev": [], "holdout": []}
    for row in rows:
        parts["holdout" if held_out(row["id"]) else "dev"].append(json.dumps(row, ensure_ascii=False))
    for name, lines in parts.items():
        (HERE / name).mkdir(exist_ok=True)
        (HERE / name / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(parts["dev"]), len(parts["holdout"])


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        dev, holdout = split(Path(arg))
        print(f"{arg}: dev {dev}, holdout {holdout}")
        Path(arg).unlink()
