"""Scoring: where the gold answer first appears in a ranking, and the hit@k / MRR figures over many cases."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from .cases import FILE_LOCALIZATION, Case

CUTOFFS = (1, 5, 10)
Span = tuple[str, int, int]  # path, start line, end line (1-based, inclusive)


def overlaps(span: Span, path: str, start: int, end: int) -> bool:
    return span[0] == path and span[1] <= end and span[2] >= start


def distinct_files(ranking: Iterable[Span]) -> list[str]:
    """File paths in order of their best-ranked span."""
    seen: dict[str, None] = {}
    for span in ranking:
        seen.setdefault(span[0], None)
    return list(seen)


def gold_rank(case: Case, ranking: Sequence[Span]) -> int | None:
    """1-based rank of the first correct answer: a span overlapping the function (needle) or a gold file among
    the distinct files (file localization); None when absent."""
    if case.suite == FILE_LOCALIZATION:
        gold = set(case.gold_files)
        return next((i for i, path in enumerate(distinct_files(ranking), 1) if path in gold), None)
    return next((i for i, span in enumerate(ranking, 1)
                 if overlaps(span, case.path, case.start_line, case.end_line)), None)


def metric_prefix(suite: str) -> str:
    return "acc" if suite == FILE_LOCALIZATION else "hit"


def summarize(ranks: Sequence[int | None], suite: str, k: int) -> dict[str, float]:
    """hit@c (or acc@c) for each cutoff up to k, and MRR@k; fractions rounded to 3 places."""
    count = len(ranks)
    prefix = metric_prefix(suite)
    figures: dict[str, float] = {"n": count}
    for cutoff in (c for c in CUTOFFS if c <= k):
        figures[f"{prefix}@{cutoff}"] = _fraction(sum(1 for r in ranks if r is not None and r <= cutoff), count)
    reciprocal = sum(1.0 / r for r in ranks if r is not None and r <= k)
    figures[f"mrr@{k}"] = round(reciprocal / count, 3) if count else 0.0
    return figures


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _fraction(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0
