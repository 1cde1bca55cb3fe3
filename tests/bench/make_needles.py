"""Make needle-docstring cases (the ../shared/eval format) from PyPI sdists, for a held-out check of retrieval
tuning: cases from packages the weights were never tuned on.

    python tests/bench/make_needles.py httpx==0.27.2 packaging==24.1 --per-package 20 > held-out.jsonl
    python tests/bench/eval_retrieval.py held-out.jsonl

A case is a function or method with a docstring of at least --min-words words and at least two statements besides
it, sampled with a fixed seed. Python only: the cases come from Python's own ast, not from repochat's chunker, so
that the evaluation does not grade repochat against itself.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: devtools

from devtools.evaluate.runner import default_work_dir  # noqa: E402
from devtools.evaluate.sources import prepare_source  # noqa: E402

SKIPPED_FOLDERS = {"tests", "test", "docs", "examples", "benchmarks", "scripts"}


def documented_functions(tree: ast.Module, min_words: int) -> Iterator[tuple[str, ast.FunctionDef]]:
    """(qualified name, node) of each function or method whose docstring is long enough and whose body is more
    than the docstring."""
    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(child)
                if doc and len(doc.split()) >= min_words and len(child.body) >= 3:
                    yield f"{prefix}{child.name}", child  # type: ignore[misc]
    yield from visit(tree, "")


def package_cases(name: str, version: str, work: Path, per_package: int, min_words: int,
                  seed: int) -> list[dict[str, object]]:
    source = {"kind": "pypi-sdist", "name": name, "version": version}
    root = prepare_source(source, work, False)
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if SKIPPED_FOLDERS & set(rel.split("/")[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for symbol, node in documented_functions(tree, min_words):
            docstring = node.body[0]
            found.append({
                "suite": "needle-docstring", "language": "python", "source": source, "path": rel,
                "symbol": symbol, "short_name": node.name, "start_line": node.lineno, "end_line": node.end_lineno,
                "strip_lines": [docstring.lineno, docstring.end_lineno],
                "query": " ".join((ast.get_docstring(node) or "").split()), "id": f"{name}:{symbol}"})
    random.Random(seed).shuffle(found)
    return sorted(found[:per_package], key=lambda case: (str(case["path"]), int(case["start_line"])))  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs="+", help="NAME==VERSION")
    parser.add_argument("--per-package", type=int, default=20)
    parser.add_argument("--min-words", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=default_work_dir(), help="download cache (shared with the "
                        "evaluation, so it reuses the sources)")
    args = parser.parse_args()
    for spec in args.packages:
        name, _, version = spec.partition("==")
        if not version:
            parser.error(f"{spec}: give NAME==VERSION")
        for case in package_cases(name, version, args.work.expanduser(), args.per_package, args.min_words, args.seed):
            print(json.dumps(case))


if __name__ == "__main__":
    main()
