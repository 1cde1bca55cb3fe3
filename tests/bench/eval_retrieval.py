"""Retrieval evaluation benchmark: hit@1/5/10 (acc@ for files) and MRR per suite, package and mode, with BM25 controls.

    python tests/bench/eval_retrieval.py ../shared/eval/dev-needles.jsonl [more.jsonl ...] [--json] [--k 10]
        [--work DIR] [--no-embed] [--fresh]

Sources are downloaded (network) and indexed once into --work (default ~/.cache/repochat-eval); re-runs reuse them.
File-localization cases (dev-swelite.jsonl) are ranked by rank_files (repochat/retrieve/files.py), with two
controls: BM25 over 40-line windows and BM25 over whole source files (tests left out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: devtools
os.environ.setdefault("LANCE_LOG", "error")  # LanceDB deprecation warnings would bury the figures

from repochat.errors import RepochatError  # noqa: E402
from devtools.evaluate import EvalOptions, as_json, as_table, load_cases, run_evaluation  # noqa: E402
from devtools.evaluate.runner import default_work_dir  # noqa: E402
from repochat.cli.progress import progress_reporter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate repochat retrieval on cases files.")
    parser.add_argument("cases", nargs="+", type=Path, help="cases files (.jsonl)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with all figures and cases")
    parser.add_argument("--k", type=int, default=10, help="results per query that count (default 10)")
    parser.add_argument("--work", type=Path, default=default_work_dir(), help="cache of sources and indexes")
    parser.add_argument("--no-embed", action="store_true", help="skip vectors: score full-text and control only")
    parser.add_argument("--fresh", action="store_true", help="re-download and re-index every source")
    parser.add_argument("--index-code", metavar="REV", default="",
                        help="reuse the indexes built by git revision REV's indexing code (when only search changed)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    options = EvalOptions(work=args.work.expanduser(), k=args.k, embed=not args.no_embed, fresh=args.fresh,
                          index_code=args.index_code)
    try:
        cases = load_cases(args.cases)
        with progress_reporter() as progress:
            run = run_evaluation(cases, options, progress, log=lambda m: print(m, file=sys.stderr, flush=True))
    except RepochatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(as_json(run), indent=1) if args.json else as_table(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
