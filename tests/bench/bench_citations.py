"""How often an answer points at the right code: the model's own citations against repochat's references.

    python tests/bench/bench_citations.py [--model NAME_OR_PATH]

Asks eight questions about examples/demo (a copy, committed to a scratch git repository) in whole-repository mode,
one engine for all, and counts the answers with a valid citation, a citation of the lines that answer the question,
and a reference (repochat.answer.references) to those lines. Greedy decoding: a run is reproducible on one machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from repochat.answer.ask import ask  # noqa: E402
from repochat.config import Settings  # noqa: E402
from repochat.engine.models import resolve_model  # noqa: E402
from repochat.engine.session import Engine  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"
# question, and the file and lines that answer it
QUESTIONS = [
    ("How long does the worker wait before the first retry?", "taskq/worker.py", 12, 19),
    ("What is the longest delay between retries?", "taskq/worker.py", 13, 19),
    ("Which method takes the next job that is ready to run?", "taskq/queue.py", 56, 61),
    ("What happens when a job's function raises an exception?", "taskq/worker.py", 39, 54),
    ("How many results does the ResultStore keep at most?", "taskq/results.py", 22, 25),
    ("Which exception is raised for a job name that was never registered?", "taskq/queue.py", 22, 64),
    ("How do I register a function as a job?", "taskq/queue.py", 36, 43),
    ("Where are failed outcomes listed?", "taskq/results.py", 37, 39),
]


def points_at(item: dict[str, object], path: str, first: int, last: int) -> bool:
    return item["path"] == path and int(item["start"]) <= last and int(item["end"]) >= first  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cite-") as scratch:
        repo = Path(scratch) / "demo"
        shutil.copytree(DEMO, repo, ignore=shutil.ignore_patterns(".repochat"))
        subprocess.run("git init -q && git add -A && git -c user.email=b@b -c user.name=bench commit -qm demo",
                       shell=True, cwd=repo, check=True)
        settings = Settings(cache_dir=str(Path(scratch) / "cache"), model=args.model, max_answer_tokens=96)
        valid = right = referenced = 0
        with Engine(resolve_model(settings), settings) as engine:
            for question, path, first, last in QUESTIONS:
                result = ask(repo, question, settings, engine=engine)
                valid += any(c["valid"] for c in result.citations)
                right += any(c["valid"] and points_at(c, path, first, last) for c in result.citations)
                referenced += any(points_at(r, path, first, last) for r in result.references)
                shown = [f"{r['path']}:{r['start']}-{r['end']}" for r in result.references]
                print(f"  {question}\n    answer: {' '.join(result.answer.split())[:160]}\n"
                      f"    citations: {[(c['path'], c['start'], c['end'], c['valid']) for c in result.citations]}"
                      f"\n    references: {shown}")
    n = len(QUESTIONS)
    print(f"{n} questions: a valid citation in {valid}, a citation of the answering lines in {right}, "
          f"a reference to the answering lines in {referenced}")


if __name__ == "__main__":
    main()
