"""Fit the hybrid search's fusion weights (repochat/retrieve/search.py) on needle cases, and judge them on others.

    python tests/bench/fit_fusion.py ../shared/eval/dev-needles.jsonl ../shared/eval/dev-needles-multilang.jsonl \
        tune.jsonl --judge judge.jsonl

where tune.jsonl and judge.jsonl come from tests/bench/make_needles.py on different packages (the session that
fitted the current weights used attrs, more-itertools, marshmallow and tomlkit to fit, and httpx, packaging,
werkzeug and pyparsing to judge). Each case's ranked lists come from repochat's own search code (ranked_lists,
candidate_features); the scorer is linear in those features, fitted by listwise logistic regression (softmax over
a case's candidates, cross-entropy of the chunks that hold the wanted function), with L2, weights kept >= 0 except
the secondary-path one, and the text list's weights held at --text-weights (needle cases strip the wanted
function's docstring, which makes the text list look useless to a fit; real questions are not like that).

Prints leave-one-package-out figures for each --l2 on the fitting cases, then the weights fitted on all of them
(as they go into search.py) and the judge figures of the fitted and the current weights. Needs the network once per
package (pip download), like eval_retrieval.py.

    python tests/bench/fit_fusion.py --files ../shared/eval/dev-swelite.jsonl [--no-embed]

fits the file ranking's weights instead (repochat/retrieve/files.py: WEIGHTS) on file-localization cases: the
candidates are a case's files with their evidence (file_features), the gold ones those the real change touched.
The fit is coordinate ascent over a grid of weights on MRR@10 + Acc@5 / 2 (the figures themselves: a listwise
cross-entropy fit was worse on them), weights >= 0 but the penalties' (files.PENALTIES). It prints the figures of
the current weights, leave-one-project-out figures (a project's several versions left out together), and the
average of the per-fold weights, which is what WEIGHTS holds. --cache PICKLE keeps the cases' evidence between runs.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: devtools
os.environ.setdefault("LANCE_LOG", "error")

from devtools.evaluate import EvalOptions, load_cases  # noqa: E402
from devtools.evaluate.metrics import gold_rank  # noqa: E402
from devtools.evaluate.runner import default_work_dir, index_source, source_groups  # noqa: E402
from repochat.retrieve import files as F  # noqa: E402
from repochat.retrieve import search as S  # noqa: E402

TEXT = (S.LISTS.index("text"), len(S.LISTS) + S.LISTS.index("text"))  # the text list's two feature columns


@dataclass
class Query:
    package: str
    spans: list[S.Span]
    features: np.ndarray
    gold: list[int]  # rows of the chunks that hold the wanted function


def queries(paths: list[Path], work: Path) -> list[Query]:
    options = EvalOptions(work=work, embed=True)
    embedder = S.cached_embedder("minilm")
    found = []
    for group in source_groups(load_cases(paths)):
        indexed = index_source(group, options, None, lambda message: print(message, file=sys.stderr))
        for case in group:
            legs = S.ranked_lists(indexed.store, case.query, embedder=embedder)
            rows, features = S.candidate_features(legs)
            spans = [S._span(row) for row in rows]
            gold = [i for i, span in enumerate(spans) if gold_rank(case, [span]) == 1]
            found.append(Query(indexed.report.package, spans, features, gold))
    return found


def file_queries(paths: list[Path], work: Path, embed: bool) -> list[Query]:
    """File-localization cases as fitting queries: each candidate is a file, with its evidence."""
    options = EvalOptions(work=work, embed=embed)
    embedder = S.cached_embedder("minilm") if embed else None
    found = []
    for group in source_groups(load_cases(paths)):
        indexed = index_source(group, options, None, lambda message: print(message, file=sys.stderr))
        for case in group:
            files, features, _ = F.file_features(indexed.store, case.query, embedder=embedder)
            gold = [i for i, path in enumerate(files) if path in case.gold_files]
            found.append(Query(indexed.report.package, [(path, 0, 0) for path in files], features, gold))
    return found


FILE_GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)


def file_objective(weights: np.ndarray, queries: list[Query]) -> float:
    places = [gold_place(q, weights) for q in queries]
    return float(np.mean([1 / p if p else 0.0 for p in places]) + 0.5 * np.mean([bool(p and p <= 5) for p in places]))


def fit_files(training: list[Query], rounds: int = 3) -> np.ndarray:
    """The file ranking's weights: coordinate ascent from the current ones, each weight in turn set to the grid
    value that scores best (the nearest to its current value among equals)."""
    weights = F.weight_vector()
    for _ in range(rounds):
        for j, name in enumerate(F.FEATURES):
            grid = [-v for v in FILE_GRID] if name in F.PENALTIES else list(FILE_GRID)

            def score(value: float, j: int = j) -> tuple[float, float]:
                trial = weights.copy()
                trial[j] = value
                return file_objective(trial, training), -abs(value - weights[j])
            weights[j] = max(grid, key=score)
    return weights


def fit(training: list[Query], l2: float, text: tuple[float, float], steps: int = 3000,
        rate: float = 0.5) -> np.ndarray:
    """Projected gradient descent on the mean listwise cross-entropy."""
    usable = [q for q in training if q.gold and len(q.spans) > 1]
    weights = np.zeros(2 * len(S.LISTS) + 1)
    weights[list(TEXT)] = text
    for _ in range(steps):
        gradient = l2 * weights
        for query in usable:
            logits = query.features @ weights
            p = np.exp(logits - logits.max())
            p /= p.sum()
            gradient += (query.features.T @ p - query.features[query.gold].mean(0)) / len(usable)
        weights -= rate * gradient
        weights[:-1] = np.maximum(weights[:-1], 0)
        weights[list(TEXT)] = text
    return weights


def gold_place(query: Query, weights: np.ndarray) -> int | None:
    """1-based place of the first chunk holding the wanted function in the top 10, or None."""
    order = np.argsort(-(query.features @ weights), kind="stable")[:10] if query.spans else []
    return next((place for place, row in enumerate(order, 1) if row in query.gold), None)


def figures(ranks: list[int | None]) -> str:
    n = max(len(ranks), 1)
    found = [r for r in ranks if r]
    return (f"hit@1 {sum(r == 1 for r in found) / n:.3f}  hit@5 {sum(r <= 5 for r in found) / n:.3f}  "
            f"hit@10 {len(found) / n:.3f}  MRR@10 {sum(1 / r for r in found) / n:.3f}  ({len(ranks)} cases)")


def judged_by(weights: np.ndarray, judged: list[Query]) -> str:
    return figures([gold_place(q, weights) for q in judged])


def main_files(args: argparse.Namespace) -> None:
    if args.cache and args.cache.is_file():
        pool = pickle.loads(args.cache.read_bytes())
    else:
        pool = file_queries(args.cases, args.work.expanduser(), embed=not args.no_embed)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(pool))
    print(f"current weights: {judged_by(F.weight_vector(), pool)}")
    ranks, folds = [], []
    for package in sorted({q.package for q in pool}):
        weights = fit_files([q for q in pool if q.package != package], rounds=2)
        folds.append(weights)
        ranks += [gold_place(q, weights) for q in pool if q.package == package]
    print(f"leave one project out: {figures(ranks)}")
    average = np.mean(folds, axis=0)
    print(f"fold average, on all {len(pool)} cases: {judged_by(average, pool)}")
    print("WEIGHTS =", {n: round(float(w), 2) for n, w in zip(F.FEATURES, average)})


def leave_one_package_out(pool: list[Query], l2: float, text: tuple[float, float]) -> str:
    ranks = []
    for package in sorted({q.package for q in pool}):
        weights = fit([q for q in pool if q.package != package], l2, text, steps=1500)
        ranks += [gold_place(q, weights) for q in pool if q.package == package]
    return figures(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="+", type=Path, help="cases to fit on")
    parser.add_argument("--judge", nargs="*", type=Path, default=[], help="cases to judge on (other packages)")
    parser.add_argument("--l2", nargs="+", type=float, default=[0.003, 0.01, 0.03])
    parser.add_argument("--text-weights", nargs=2, type=float, default=[S.RANK_WEIGHTS["text"],
                                                                        S.SCORE_WEIGHTS["text"]])
    parser.add_argument("--work", type=Path, default=default_work_dir())
    parser.add_argument("--files", action="store_true", help="fit the file ranking on file-localization cases")
    parser.add_argument("--no-embed", action="store_true", help="with --files: full-text evidence only")
    parser.add_argument("--cache", type=Path, help="with --files: keep the cases' evidence in this pickle")
    args = parser.parse_args()
    if args.files:
        main_files(args)
        return
    text = (args.text_weights[0], args.text_weights[1])
    pool = queries(args.cases, args.work.expanduser())
    for l2 in args.l2:
        print(f"leave one package out, L2 {l2}: {leave_one_package_out(pool, l2, text)}")
    weights = fit(pool, args.l2[0], text)
    names = len(S.LISTS)
    print(f"fitted with L2 {args.l2[0]} on all {len(pool)} cases:")
    print("RANK_WEIGHTS =", {n: round(float(w), 3) for n, w in zip(S.LISTS, weights[:names])})
    print("SCORE_WEIGHTS =", {n: round(float(w), 3) for n, w in zip(S.LISTS, weights[names:2 * names])})
    print("SECONDARY_WEIGHT =", round(float(weights[-1]), 3))
    print(f"fitting cases, fitted weights:  {judged_by(weights, pool)}")
    print(f"fitting cases, current weights: {judged_by(S.feature_weights(), pool)}")
    if args.judge:
        judged = queries(args.judge, args.work.expanduser())
        print(f"judge cases, fitted weights:    {judged_by(weights, judged)}")
        print(f"judge cases, current weights:   {judged_by(S.feature_weights(), judged)}")


if __name__ == "__main__":
    main()
