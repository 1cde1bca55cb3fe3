"""Figures from an evaluation run: per suite, per package and overall, per mode; as a table or as one JSON object."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .cases import SUITES
from .metrics import percentile, summarize
from .runner import CaseResult, EvalRun

OVERALL = "overall"
TIMED_MODE = "hybrid"


def figures(run: EvalRun) -> dict[str, Any]:
    """{suite: {group: {mode: {n, hit@1, ..., mrr@k}}}} for the suites present; a group is a package, a cases
    file ("file:NAME", when a suite's cases come from several) or "overall"."""
    out: dict[str, Any] = {}
    for suite in SUITES:
        results = [r for r in run.results if r.suite == suite]
        if not results:
            continue
        groups: dict[str, list[CaseResult]] = {OVERALL: results}
        for r in results:
            groups.setdefault(r.package, []).append(r)
        origins = list(dict.fromkeys(r.origin for r in results))
        for origin in origins if len(origins) > 1 else ():
            groups[f"file:{origin}"] = [r for r in results if r.origin == origin]
        groups[OVERALL] = groups.pop(OVERALL)  # last in the table
        modes = run.options.modes_for(suite)
        out[suite] = {name: {mode: summarize([r.rank for r in chosen if r.mode == mode], suite, run.options.k)
                             for mode in modes} for name, chosen in groups.items()}
    return out


def latency(run: EvalRun) -> dict[str, float]:
    seconds = [r.seconds for r in run.results if r.mode == TIMED_MODE]
    return {"mode": TIMED_MODE, "n": len(seconds), "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
            "p95_ms": round(percentile(seconds, 0.95) * 1000, 1)}


def as_json(run: EvalRun) -> dict[str, Any]:
    return {"k": run.options.k, "modes": list(run.options.modes), "figures": figures(run),
            "latency": latency(run), "sources": [asdict(s) for s in run.sources],
            "cases": [asdict(r) for r in run.results], "skipped": run.skipped}


def as_table(run: EvalRun) -> str:
    lines: list[str] = []
    for suite, table in figures(run).items():
        lines.append(f"\n{suite}")
        metrics = [m for m in next(iter(next(iter(table.values())).values())) if m != "n"]
        width = max(len(group) for group in table) + 2
        lines.append(f"  {'group':<{width}}{'n':>4}  {'mode':<14}" + "".join(f"{m:>9}" for m in metrics))
        for group, modes in table.items():
            for i, (mode, row) in enumerate(modes.items()):
                name, count = (group, str(row["n"])) if i == 0 else ("", "")
                lines.append(f"  {name:<{width}}{count:>4}  {mode:<14}" + "".join(f"{row[m]:>9.3f}" for m in metrics))
    if TIMED_MODE in run.options.modes:
        lat = latency(run)
        lines.append(f"\n{TIMED_MODE} query latency over {lat['n']} queries: p50 {lat['p50_ms']} ms, "
                     f"p95 {lat['p95_ms']} ms")
    for s in run.sources:
        lines.append(f"{s.package}: {s.files} files, {s.chunks} chunks, index {s.index_seconds}s, "
                     f"embed {s.embed_seconds}s ({s.embedded} new vectors)")
    if run.skipped:
        lines.append(f"skipped {len(run.skipped)} case(s) whose source could not be prepared: "
                     + ", ".join(sorted(run.skipped)))
    return "\n".join(lines).lstrip("\n")
