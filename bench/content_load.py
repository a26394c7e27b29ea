"""How long loading (parsing, validating, indexing) the content library takes.

Prints the time for the shipped library and for a copy ten times its size (generated in a
temporary folder with distinct ids), so a growing library's load time can be watched.

    python bench/content_load.py
"""

from __future__ import annotations

import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from bot.content.library import LoadResult, load_library  # noqa: E402

SHIPPED = REPO / "content"
COPIES = 10
REPEATS = 5
_ID_RE = re.compile(r'^id = "([^"]+)"', re.M)


def _time_load(content_dir: Path) -> tuple[float, LoadResult]:
    """Median wall time over REPEATS loads (the first one included: that is the bot's start)."""
    times: list[float] = []
    result: LoadResult | None = None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = load_library(content_dir, allow_drafts=False)
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), result


def make_copies(source: Path, target: Path, copies: int) -> int:
    """Write `copies` copies of every content file under `target`, each with its own id."""
    written = 0
    paths = [p for folder in ("psychoeducation", "skills") for p in source.glob(f"*/{folder}/*.md")]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for n in range(copies):
            new_text = _ID_RE.sub(f'id = "\\1-{n}"', text, count=1)
            stem = _ID_RE.search(new_text).group(1)  # type: ignore[union-attr]
            out = target / path.relative_to(source).parent / f"{stem}.md"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(new_text, encoding="utf-8")
            written += 1
    return written


def run() -> dict[str, float | int]:
    """Load times in milliseconds and the sizes measured."""
    shipped_s, shipped = _time_load(SHIPPED)
    with tempfile.TemporaryDirectory(prefix="iopbot-content-bench-") as tmp:
        big_dir = Path(tmp) / "content"
        files = make_copies(SHIPPED, big_dir, COPIES)
        big_s, big = _time_load(big_dir)
        shutil.rmtree(big_dir)
    return {
        "shipped_files": len(shipped.files),
        "shipped_items": len(shipped.library),
        "shipped_ms": round(shipped_s * 1000, 1),
        "copy10_files": files,
        "copy10_items": len(big.library),
        "copy10_errors": len(big.errors),
        "copy10_ms": round(big_s * 1000, 1),
        "ms_per_file": round(big_s * 1000 / max(files, 1), 2),
    }


def main() -> None:
    figures = run()
    print(
        f"shipped library: {figures['shipped_files']} files, {figures['shipped_items']} items, "
        f"{figures['shipped_ms']} ms (median of {REPEATS})"
    )
    print(
        f"10x copy:        {figures['copy10_files']} files, {figures['copy10_items']} items, "
        f"{figures['copy10_ms']} ms ({figures['ms_per_file']} ms per file)"
    )


if __name__ == "__main__":
    main()
