"""What the secret rules cost, and what they flag, over a large directory (default: this interpreter's site-packages).

    python tests/bench/bench_secret_scan.py [DIRECTORY] [--show N]

Every file of at most max_file_size bytes is read into memory first, then content_skip_reason runs over each one
with its path, as the indexer calls it: the time is the checks alone, not the disk. Prints files, megabytes,
seconds, MB/s, the files flagged as secrets (by format) and up to N of their paths, to look for false positives.
"""

from __future__ import annotations

import argparse
import os
import sysconfig
import time
from collections import Counter
from pathlib import Path

from repochat.config import Settings
from repochat.repo.filters import content_skip_reason
from repochat.repo.secret_rules import find_secret


def load(directory: Path, limit: int) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for dirpath, _dirs, names in os.walk(directory):
        for name in names:
            path = Path(dirpath) / name
            try:
                if path.is_file() and path.stat().st_size <= limit:
                    files.append((path.relative_to(directory).as_posix(), path.read_bytes()))
            except OSError:
                continue
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", nargs="?", default=sysconfig.get_paths()["purelib"])
    parser.add_argument("--show", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = load(Path(args.directory), Settings().max_file_size)
    megabytes = sum(len(data) for _path, data in files) / 1e6
    best = float("inf")
    for _ in range(args.repeat):
        began = time.process_time()
        reasons = [content_skip_reason(data, path) for path, data in files]
        best = min(best, time.process_time() - began)
    flagged = [(path, data) for (path, data), reason in zip(files, reasons) if reason == "secret"]
    formats = Counter(find_secret(data, path) for path, data in flagged)
    print(f"{len(files)} files, {megabytes:.1f} MB: {best:.2f} s ({megabytes / best:.0f} MB/s), "
          f"{len(flagged)} flagged as secrets")
    for name, count in formats.most_common():
        print(f"  {count:5d}  {name}")
    for path, data in flagged[:args.show]:
        print(f"  {find_secret(data, path)}: {path}")


if __name__ == "__main__":
    main()
