"""The answer benchmark: real `repochat ask` end to end over evaluation cases, scored as a user would read the answer.

    python tests/bench/eval_answers.py CASES.jsonl [more.jsonl ...] [--effort low --effort high] [--model NAME]
        [--suite needle-docstring] [--package NAME] [--id ID] [--sample N --seed S] [--limit N] [--max-repo-tokens N]
        [--max-answer-tokens N] [--set NAME=VALUE] [--json-out FILE] [--work DIR] [--no-embed] [--fresh]

Needle cases are asked "Which function or method does the following: '<docstring>'? Name it and its file." about a
copy with the docstrings removed; file-localization cases "Which files would need to change to resolve this
issue?" with the issue text. Scoring (tests/devtools/evaluate/answers.py): needle right = the function named as code
(its short name in backticks, a fenced block, or written as ``name(``), cited = a valid citation or "defined at"
reference overlapping it, named file = its file named; localization first / top 3 = a gold file first / among the
first three files the answer names, cites or references. Every row has time to first token and total time, the
mode `ask` chose, and the search top-1 control (repochat search alone, no model).

--max-repo-tokens N asks each case about its own small repository: the case's file (or gold files) plus the nearest
other files, about N tokens in all, so the whole repository fits the context and `--effort high` (whole repository)
can be compared with `--effort low` (retrieval) on 2 cores. Sources are downloaded once into --work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: devtools
os.environ.setdefault("LANCE_LOG", "error")  # LanceDB deprecation warnings would bury the figures

from repochat.errors import RepochatError  # noqa: E402
from devtools.evaluate import load_cases  # noqa: E402
from devtools.evaluate.answer_run import AnswerOptions, as_table, pick_cases, run_answers, summary  # noqa: E402
from devtools.evaluate.cases import SUITES  # noqa: E402
from devtools.evaluate.runner import default_work_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate repochat's answers end to end on cases files.")
    parser.add_argument("cases", nargs="+", type=Path, help="cases files (.jsonl)")
    parser.add_argument("--effort", action="append", choices=("low", "auto", "high"),
                        help="effort to ask at; repeat to compare (default auto)")
    parser.add_argument("--model", action="append", help="model name or GGUF path; repeat to compare (default: "
                        "the default model)")
    parser.add_argument("--suite", action="append", choices=SUITES, help="only cases of this suite (repeatable)")
    parser.add_argument("--package", action="append", help="only cases whose source is this package (repeatable)")
    parser.add_argument("--id", action="append", help="only the case with this id (repeatable)")
    parser.add_argument("--sample", type=int, default=0, help="a seeded random sample of N cases")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument("--limit", type=int, default=0, help="at most N cases (after --sample)")
    parser.add_argument("--max-repo-tokens", type=int, default=0,
                        help="ask each case about a small repository of about N tokens around its file")
    parser.add_argument("--max-answer-tokens", type=int, default=0, help="cap answers (default: the setting)")
    parser.add_argument("--threads", type=int, default=0, help="model threads (default: the setting)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="ask with this setting (as in repochat.toml, e.g. retrieval_tokens=2048; repeatable)")
    parser.add_argument("--json-out", type=Path, help="write the summary and per-case rows (with answers) here")
    parser.add_argument("--work", type=Path, default=default_work_dir(), help="cache of sources and indexes")
    parser.add_argument("--no-embed", action="store_true", help="no vectors: retrieval by full-text search only")
    parser.add_argument("--fresh", action="store_true", help="re-download and re-index every source")
    parser.add_argument("--index-code", metavar="REV", default="",
                        help="reuse the indexes built by git revision REV's indexing code (when only search changed)")
    args = parser.parse_args(argv)
    for name in ("sample", "limit", "max_repo_tokens", "max_answer_tokens", "threads"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    options = AnswerOptions(work=args.work.expanduser(), efforts=tuple(dict.fromkeys(args.effort or ["auto"])),
                            models=tuple(dict.fromkeys(args.model or ["default"])),
                            max_repo_tokens=args.max_repo_tokens, max_answer_tokens=args.max_answer_tokens,
                            embed=not args.no_embed, fresh=args.fresh, threads=args.threads, index_code=args.index_code,
                            settings=tuple(_setting(parser, text) for text in args.set))
    started = time.monotonic()
    rows = []
    skipped: dict[str, str] = {}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        all_cases = load_cases(args.cases)
        cases = pick_cases(all_cases, args.suite or (), args.package or (), args.sample, args.seed, args.limit,
                           args.id or ())
        if not cases:
            print("error: no cases left after --suite / --package / --sample / --limit", file=sys.stderr)
            return 2
        log(f"{len(cases)} cases x {len(options.efforts)} efforts x {len(options.models)} models")
        rows = run_answers(cases, all_cases, options, log, skipped=skipped)
    except RepochatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    print(as_table(rows))
    print(f"\n{len(rows)} answers in {elapsed / 60:.1f} min")
    if skipped:
        print(f"skipped {len(skipped)} case(s) whose source could not be prepared: {', '.join(sorted(skipped))}")
    if args.json_out:
        report = {"argv": sys.argv[1:] if argv is None else argv, "seconds": round(elapsed, 1),
                  "summary": summary(rows), "skipped": skipped, "rows": [row.as_dict() for row in rows]}
        args.json_out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def _setting(parser: argparse.ArgumentParser, text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        parser.error(f"--set takes NAME=VALUE, not {text!r}")
    return name.strip(), value.strip()


if __name__ == "__main__":
    sys.exit(main())
