"""How big the index grows under a watcher: 200 small updates (one file edited each time), with compaction and
version cleanup off and on.

    python tests/bench/bench_index_versions.py [source folder ...]   # default: this repository's repochat/, tests/

A real editing session updates every few seconds and keeps versions for minutes (KEEP_VERSIONS_FOR,
COMPACTION_MARGIN); to run in minutes, the maintained run scales time down 30x: versions are kept 4 s (+2 s margin)
and an update comes every 0.5 s (15 s of editing in real time). Prints the size on disk and the chunks table's
version count after every 50 updates, and the mean and slowest update (an update that compacts costs more).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from repochat.config import load_settings
from repochat.index import schema as store_schema
from repochat.index import upkeep
from repochat.index.indexer import update_index

UPDATES = 200
REPORT_EVERY = 50
PAUSE_S = 0.5
POLICIES = {  # name: (OPTIMIZE_AFTER_VERSIONS, KEEP_VERSIONS_FOR, COMPACTION_MARGIN)
    "no maintenance": (10**9, upkeep.KEEP_VERSIONS_FOR, upkeep.COMPACTION_MARGIN),
    "maintained, 1/30 time": (upkeep.OPTIMIZE_AFTER_VERSIONS, timedelta(seconds=4), timedelta(seconds=2)),
}


def size_of(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # cleaned up while counted
            pass
    return total


def versions(index: Path) -> int:
    return sum(1 for p in (index / store_schema.FOLDER / "db" / "chunks.lance" / "_versions").glob("*.manifest"))


def run(name: str, source: list[Path], policy: tuple[int, timedelta, timedelta]) -> None:
    (upkeep.OPTIMIZE_AFTER_VERSIONS, upkeep.KEEP_VERSIONS_FOR, upkeep.COMPACTION_MARGIN) = policy
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        for folder in source:
            shutil.copytree(folder, root / folder.name, ignore=shutil.ignore_patterns("__pycache__", ".repochat"))
        settings = load_settings(root, {"embeddings": False})
        update_index(root, settings)
        index = settings.index_path(root)
        line = [f"{name:22s} {size_of(index) / 1e6:5.2f} MB ({versions(index)} v)"]
        files = sorted(root.rglob("*.py"))
        seconds = []
        for number in range(1, UPDATES + 1):
            target = files[number % len(files)]
            with target.open("a", encoding="utf-8") as out:
                out.write(f"\n\ndef watched_edit_{number}(value):\n    return value + {number}\n")
            started = time.perf_counter()
            update_index(root, settings)
            seconds.append(time.perf_counter() - started)
            if number % REPORT_EVERY == 0:
                line.append(f"{size_of(index) / 1e6:5.2f} MB ({versions(index)} v)")
            time.sleep(PAUSE_S)
        print(" -> ".join(line) + f"; update mean {statistics.mean(seconds):.2f}s, slowest {max(seconds):.2f}s",
              flush=True)


def main() -> None:
    here = Path(__file__).resolve().parents[2]
    source = [Path(arg) for arg in sys.argv[1:]] or [here / "repochat", here / "tests"]
    print(f"index size and chunks versions before, then after every {REPORT_EVERY} updates")
    for name, policy in POLICIES.items():
        run(name, source, policy)


if __name__ == "__main__":
    main()
