"""Real-repository benchmark: fetch pinned real source packages in all the languages repochat parses, and run the
real CLI over each as a user would, counting crashes (the goal is none) and time per package.

    nice python tests/bench/bench_real_repos.py                   # every package in real_repos.jsonl
    python tests/bench/bench_real_repos.py --only rxjs --only rake  # some of them
    python tests/bench/bench_real_repos.py --limit 3                # the first three

Packages come from the ordinary registry clients (`pip download` sdists, `npm pack`, `apt-get download` of Debian
packages that ship their sources: Go, Rust, Ruby, PHP, shell, C and C++ headers), in the cases format of
../shared/eval (see tests/devtools/evaluate/sources.py), each unpacked once into --cache and reused by later runs. Each
package is then a plain directory (not a git repository) given to `repochat index --rebuild --no-embed --json`,
`search --json WORD`, `status --json` and `map`, in subprocesses with a timeout. A crash is a nonzero exit, a
"Traceback" on stderr, a signal or a timeout. The table gives, per package: the languages of the indexed files,
the files in the tree, the files indexed, the skips by reason, the seconds of the cold index and of all four
commands, the search hits for WORD, and the crashes; a summary line ends it. The exit status is 1 if anything
crashed. Indexes go under --cache too (REPOCHAT_INDEX_DIR), never into the unpacked trees.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: devtools

from repochat.errors import RepochatError  # noqa: E402
from devtools.evaluate.sources import cache_name, prepare_source  # noqa: E402
from repochat.index.languages import supported_languages  # noqa: E402

CASES = Path(__file__).with_name("real_repos.jsonl")
DEFAULT_CACHE = Path("~/.cache/repochat-bench")
TIMEOUTS = {"index": 900, "search": 120, "status": 120, "map": 300}  # seconds, on two busy cores
TAIL_LINES = 8  # lines of stderr kept for a crash report


@dataclass
class Run:
    """One repochat command and what it did."""

    command: list[str]
    returncode: int | None  # None: killed at the timeout
    seconds: float
    stdout: str
    stderr: str

    def crash(self) -> str:
        """Why this run counts as a crash, or "" when it does not."""
        if self.returncode is None:
            return "timeout"
        if self.returncode < 0:
            return f"signal {signal.Signals(-self.returncode).name}"
        if "Traceback" in self.stderr:
            return "traceback"
        return f"exit {self.returncode}" if self.returncode else ""


@dataclass
class Row:
    """One package's line of the table."""

    package: str
    languages: dict[str, int] = field(default_factory=dict)
    files: int = 0
    indexed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    index_seconds: float = 0.0
    total_seconds: float = 0.0
    hits: int | None = None
    crashes: list[tuple[str, Run]] = field(default_factory=list)
    problem: str = ""  # the package could not be fetched or read: not a repochat crash


def load_cases(path: Path, only: list[str], limit: int | None) -> list[dict[str, Any]]:
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if only:
        wanted = {name.lower() for name in only}
        cases = [c for c in cases if str(c["source"]["name"]).lower() in wanted]
    return cases[:limit] if limit else cases


def repochat(args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Run:
    """Run the real CLI (this interpreter's repochat) in a subprocess."""
    command = [sys.executable, "-m", "repochat", *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return Run(command, None, time.perf_counter() - started, _text(exc.stdout), _text(exc.stderr))
    return Run(command, done.returncode, time.perf_counter() - started, done.stdout, done.stderr)


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def command_env(cache: Path, package: str) -> dict[str, str]:
    """The index under the cache, a private repochat cache dir, and no git discovery above the cache (an enclosing
    repository would otherwise be indexed instead of the package)."""
    env = dict(os.environ)
    env["REPOCHAT_INDEX_DIR"] = str(cache / "indexes" / package)
    env["REPOCHAT_CACHE_DIR"] = str(cache / "repochat-cache")
    env["GIT_CEILING_DIRECTORIES"] = str(cache)
    return env


def count_files(root: Path) -> int:
    """Regular files and symlinks in the tree, as a user would count them (no links followed)."""
    return sum(len(names) + sum(1 for d in dirs if (Path(top) / d).is_symlink())
               for top, dirs, names in os.walk(root))


def indexed_languages(index_dir: Path) -> dict[str, int]:
    """Indexed files per language, read from the index the run built."""
    from repochat.index.store import IndexStore

    store = IndexStore.open(index_dir, pinned=False)
    rows = store.table("files").search().select(["language", "status"]).limit(None).to_arrow().to_pylist()
    counts: dict[str, int] = {}
    for row in rows:
        if row["status"] == "indexed":
            counts[row["language"] or "?"] = counts.get(row["language"] or "?", 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def bench_package(case: dict[str, Any], root: Path, cache: Path) -> Row:
    source = case["source"]
    row = Row(str(source["name"]), files=count_files(root))
    env = command_env(cache, cache_name(source))
    steps = [("index", ["index", "--rebuild", "--no-embed", "--json", str(root)]),
             ("search", ["search", "--json", "-C", str(root), str(case["query"])]),
             ("status", ["status", "--json", "-C", str(root)]),
             ("map", ["map", "-C", str(root)])]
    for step, args in steps:
        run = repochat(args, env, root, TIMEOUTS[step])
        row.total_seconds += run.seconds
        if run.crash():
            row.crashes.append((step, run))
        elif step == "index":
            _read_index_summary(row, run)
        elif step == "search":
            row.hits = len(_json(run.stdout).get("results", []))
    if not any(step == "index" for step, _ in row.crashes):
        try:
            row.languages = indexed_languages(Path(env["REPOCHAT_INDEX_DIR"]))
            row.indexed = sum(row.languages.values())
        except (RepochatError, OSError, ValueError) as exc:
            row.problem = f"could not read the index: {exc}"
    return row


def _read_index_summary(row: Row, run: Run) -> None:
    summary = _json(run.stdout)  # its "files" are the files walked, some then skipped as binary or secret
    row.skipped = {k: v for k, v in dict(summary.get("skipped", {})).items() if v}
    row.index_seconds = run.seconds


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def fetch(case: dict[str, Any], cache: Path) -> Path | str:
    """The unpacked package (downloaded on first use), or why it could not be had."""
    try:
        return prepare_source(case["source"], cache / "sources")
    except (RepochatError, OSError) as exc:
        return str(exc)


def print_table(rows: list[Row]) -> None:
    header = ("package", "languages (indexed files)", "files", "indexed", "skipped by reason", "index s", "all s",
              "hits", "crashes")
    lines = [header] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _cells(row: Row) -> tuple[str, ...]:
    if row.problem and not row.files:
        return (row.package, row.problem, "", "", "", "", "", "", "")
    languages = ", ".join(f"{name} {n}" for name, n in list(row.languages.items())[:4]) or "-"
    if len(row.languages) > 4:
        languages += ", ..."
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(row.skipped.items())) or "-"
    crashes = ", ".join(f"{step}: {run.crash()}" for step, run in row.crashes) or "0"
    hits = "-" if row.hits is None else str(row.hits)
    return (row.package, languages, str(row.files), str(row.indexed), skipped, f"{row.index_seconds:.1f}",
            f"{row.total_seconds:.1f}", hits, crashes)


def print_crashes(rows: list[Row]) -> None:
    for row in rows:
        for step, run in row.crashes:
            print(f"\n{row.package}: {step} {run.crash()} after {run.seconds:.1f}s\n  $ {' '.join(run.command)}")
            for line in (run.stderr or run.stdout).strip().splitlines()[-TAIL_LINES:]:
                print(f"  | {line}")


def summary_line(rows: list[Row]) -> str:
    covered = {lang for row in rows for lang in row.languages}
    wanted = {spec.name for spec in supported_languages()} - {"tsx"}  # TSX is TypeScript's second grammar
    missing = ", ".join(sorted(wanted - covered))
    unfetched = sum(1 for row in rows if row.problem and not row.files)
    parts = [f"{len(rows)} packages ({unfetched} not fetched)", f"{sum(r.files for r in rows)} files",
             f"{sum(r.indexed for r in rows)} indexed", f"{sum(sum(r.skipped.values()) for r in rows)} skipped",
             f"languages {len(wanted & covered)}/{len(wanted)}" + (f" (missing: {missing})" if missing else ""),
             f"index {sum(r.index_seconds for r in rows):.1f}s",
             f"all commands {sum(r.total_seconds for r in rows):.1f}s",
             f"crashes: {sum(len(row.crashes) for row in rows)}"]
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=Path, default=CASES, help="packages, one JSON object a line")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads, unpacked trees and indexes")
    parser.add_argument("--only", action="append", default=[], help="only this package name (repeatable)")
    parser.add_argument("--limit", type=int, help="only the first N packages")
    args = parser.parse_args()
    cache = args.cache.expanduser().resolve()
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in load_cases(args.cases, args.only, args.limit):
        name = str(case["source"]["name"])
        print(f"{name} {case['source']['version']} ...", file=sys.stderr, flush=True)
        root = fetch(case, cache)
        rows.append(bench_package(case, root, cache) if isinstance(root, Path) else Row(name, problem=root))
    print_table(rows)
    print_crashes(rows)
    print(f"\n{summary_line(rows)}")
    return 1 if any(row.crashes for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
