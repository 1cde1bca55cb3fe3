"""Planted-bug detection rate and time per review on the fixed cases of tests/review_cases.py.

    python tests/bench/bench_review.py [--model default] [--threads 0] [--cases 0,2,5] [--effort auto]
                                       [--stable-tokens 0] [--warm]

Each case is a fresh git repository, indexed, with one staged edit that plants a bug; a hit is a finding on the
case's file and one of its expected lines; whether its message names the cause is counted apart (findings can only
point at changed lines, so for a one-line change the location alone says little). Correct changes are reviewed
too (tests/review_cases.py CLEAN_EDITS): a finding at 'error' on one of them is a false alarm. The model is loaded once; the time per review includes the
staged-index update, the context, the prompt and the constrained generation (the model load is printed apart).

Whole-repository review: --stable-tokens N commits about N tokens of unchanged code before the case's files (so that
the unchanged part of the prefix spans whole KV pages), and --warm runs one `ask` before the edit is staged, as a
user would have, so that its KV pages are on disk; each line then shows the mode and the tokens restored / prefilled.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repo_support import git, write_files  # noqa: E402
from review_cases import CASES, CLEAN_EDITS  # noqa: E402

from repochat.answer.ask import ask  # noqa: E402
from repochat.config import Settings  # noqa: E402
from repochat.engine.models import resolve_model  # noqa: E402
from repochat.engine.session import Engine  # noqa: E402
from repochat.index.indexer import update_index  # noqa: E402
from repochat.review.run import review  # noqa: E402
from repochat.review.report import ReviewReport  # noqa: E402


def stable_files(tokens: int) -> dict[str, str]:
    """Unchanging modules of about ``tokens`` tokens in all (about 60 tokens per function, numbered lines included)."""
    functions = [f'def convert_{n}(value: float) -> float:\n    """Convert a reading of kind {n} to SI units."""\n'
                 f"    return value * {n + 1}.5 + {n}\n" for n in range(tokens // 60)]
    return {f"units/part{start // 20}.py": "\n\n".join(functions[start:start + 20])
            for start in range(0, len(functions), 20)}


def staged_repo(base: Path, name: str, files: dict[str, str], edit: dict[str, str], settings: Settings,
                stable: dict[str, str], engine: Engine | None) -> Path:
    """The case's repository (stable files committed first, so they come first in stability order), indexed; with
    ``engine``, asked about once (its KV pages written) before the edit is staged."""
    root = base / name
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for group in (stable, files):
        if group:
            write_files(root, group)
            git(root, "add", *group)
            git(root, "commit", "-q", "-m", "add files")
    update_index(root, settings)
    if engine is not None:
        ask(root, "What does this repository do?", replace(settings, max_answer_tokens=8), engine=engine)
        engine.close_context()  # the review restores from disk, as a hook in its own process would
    write_files(root, edit)
    git(root, "add", *edit)
    return root


def describe(report: ReviewReport) -> str:
    found = "; ".join(f"{f.path}:{f.line} {f.severity}: {f.message[:70]}" for f in report.findings) or "no findings"
    stats = report.stats
    return (f"{report.seconds:6.1f}s  {stats.get('mode', '?'):9s} restored {stats.get('restored_tokens', 0):5d} "
            f"prefilled {stats.get('prefilled_tokens', 0):5d} in {stats.get('prefill_seconds', 0):5.1f}s, verdict "
            f"{stats.get('verdict_margin', 0):+.2f}, output {stats.get('output_tokens', 0):3d} tok | {found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cases", default="", help="comma-separated case numbers (default: all)")
    parser.add_argument("--effort", default="auto", choices=("low", "auto", "high"))
    parser.add_argument("--stable-tokens", type=int, default=0, help="unchanged code committed before each case")
    parser.add_argument("--warm", action="store_true", help="ask once before staging (KV pages on disk)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-review-"))
    settings = Settings(model=args.model, threads=args.threads, embeddings=False, cache_dir=str(base / "cache"))
    settings = replace(settings, model=str(resolve_model(Settings(model=args.model))))  # cache_dir has no models
    stable = stable_files(args.stable_tokens)
    chosen = [CASES[int(n)] for n in args.cases.split(",")] if args.cases else list(CASES)
    began = time.monotonic()
    engine = Engine(resolve_model(settings), settings)
    print(f"model {engine.model_path.name} loaded in {time.monotonic() - began:.1f}s")
    warm = engine if args.warm else None
    times, hits, explained = [], 0, 0
    try:
        for number, case in enumerate(chosen):
            root = staged_repo(base, f"case{number}", case.files, case.edit, settings, stable, warm)
            report = review(root, settings, engine=engine, effort=args.effort)
            located = [f for f in report.findings if f.path == case.path and f.line in case.lines]
            hit = bool(located)
            hits += hit
            explained += any(case.explained_by(f.message) for f in located)
            times.append(report.seconds)
            print(f"{'HIT ' if hit else 'MISS'} {case.kind:21s} {case.name:20s} {describe(report)}")
        alarms = 0
        for number, (name, files, edit) in enumerate(CLEAN_EDITS):
            clean = review(staged_repo(base, f"clean{number}", files, edit, settings, stable, warm), settings,
                           engine=engine, effort=args.effort)
            alarm = any(f.severity == "error" for f in clean.findings)
            alarms += alarm
            times.append(clean.seconds)
            print(f"{'ALARM' if alarm else 'PASS '} {'clean change':21s} {name:20s} {describe(clean)}")
    finally:
        engine.close()
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ndetection: {hits}/{len(chosen)} planted bugs on the right file and line ({hits / len(chosen):.0%}); "
          f"false alarms (a finding at 'error'): {alarms}/{len(CLEAN_EDITS)} clean changes")
    print(f"located and naming the cause (a word of the case's cause in the message): {explained}/{len(chosen)}")
    print(f"seconds per review: median {statistics.median(times):.1f}, max {max(times):.1f} "
          f"(threads={args.threads or 'fitted to the load'}, load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
