"""A ranked map of the repository: the most referenced definitions first, fitted to a token budget.

Files are nodes; a reference in file A to a name defined in file B is an edge A -> B. PageRank over that graph (with an
optional bias towards focus files or names) ranks files; each file's rank flows to the definitions that drew it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import AbstractSet

from ..index.store import IndexStore
from ..tokens import count_tokens

DAMPING = 0.85
ITERATIONS = 30


@dataclass(frozen=True)
class MapEntry:
    path: str
    line: int
    symbol: str
    signature: str
    rank: float


def rank_definitions(store: IndexStore, focus_paths: AbstractSet[str] = frozenset(),
                     focus_names: AbstractSet[str] = frozenset()) -> list[MapEntry]:
    """Definitions ordered by importance in the reference graph."""
    symbols = store.table("symbols").search().select(["path", "name", "role"]).limit(None).to_arrow().to_pylist()
    defined_in: dict[str, set[str]] = defaultdict(set)
    for row in symbols:
        if row["role"] == "definition":
            defined_in[row["name"]].add(row["path"])
    edges: dict[tuple[str, str], float] = defaultdict(float)
    weight_of_name: dict[tuple[str, str], float] = defaultdict(float)
    for row in symbols:
        targets = defined_in.get(row["name"]) if row["role"] == "reference" else None
        if not targets:
            continue
        weight = _name_weight(row["name"], len(targets), row["name"] in focus_names)
        for target in targets:
            edges[(row["path"], target)] += weight / len(targets)
            weight_of_name[(target, row["name"])] += weight / len(targets)
    nodes = {p for pair in edges for p in pair} | {p for paths in defined_in.values() for p in paths}
    ranks = pagerank(nodes, edges, {p for p in nodes if p in focus_paths})
    return _entries(store, ranks, weight_of_name)


def render_map(entries: list[MapEntry], max_tokens: int) -> tuple[str, int]:
    """The map text within max_tokens (path headers included) and the tokens it uses."""
    by_file: dict[str, list[MapEntry]] = defaultdict(list)
    used = 0
    for entry in entries:
        header = 0 if entry.path in by_file else count_tokens(entry.path + ":\n")
        cost = header + count_tokens(_line(entry))
        if used + cost > max_tokens:
            continue  # a shorter entry further down may still fit
        by_file[entry.path].append(entry)
        used += cost
    lines = []
    for path, items in by_file.items():
        lines.append(f"{path}:")
        lines.extend(_line(e) for e in sorted(items, key=lambda e: e.line))
    return "\n".join(lines), used


def pagerank(nodes: set[str], edges: dict[tuple[str, str], float], focus: set[str]) -> dict[str, float]:
    if not nodes:
        return {}
    out_weight: dict[str, float] = defaultdict(float)
    incoming: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (src, dst), weight in edges.items():
        out_weight[src] += weight
        incoming[dst].append((src, weight))
    bias = {n: (1.0 / len(focus) if n in focus else 0.0) for n in nodes} if focus else \
        {n: 1.0 / len(nodes) for n in nodes}
    rank = dict(bias) if focus else {n: 1.0 / len(nodes) for n in nodes}
    for _ in range(ITERATIONS):
        dangling = sum(rank[n] for n in nodes if out_weight[n] == 0)
        rank = {n: (1 - DAMPING) * bias[n] + DAMPING * (dangling * bias[n] + sum(
            rank[src] * w / out_weight[src] for src, w in incoming[n])) for n in nodes}
    return rank


def _name_weight(name: str, n_defs: int, focused: bool) -> float:
    """Specific names matter more: long or compound names, few definitions; private and very short ones less."""
    weight = 1.0
    if focused:
        weight *= 10
    if len(name) >= 8 and ("_" in name or name != name.lower()):
        weight *= 3
    if name.startswith("_") or len(name) < 3:
        weight *= 0.1
    return weight / math.sqrt(n_defs)


def _entries(store: IndexStore, ranks: dict[str, float],
             weight_of_name: dict[tuple[str, str], float]) -> list[MapEntry]:
    chunks = store.table("chunks").search().select(["path", "symbol", "signature", "start_line"]) \
        .where("symbol != ''").limit(None).to_arrow().to_pylist()
    totals: dict[str, float] = defaultdict(float)
    for (path, _name), weight in weight_of_name.items():
        totals[path] += weight
    entries = []
    for chunk in chunks:
        path, bare = chunk["path"], chunk["symbol"].rsplit(".", 1)[-1]
        share = weight_of_name.get((path, bare), 0.0) / totals[path] if totals.get(path) else 0.0
        rank = ranks.get(path, 0.0) * (share + 0.01)
        signature = (chunk["signature"] or chunk["symbol"]).strip().splitlines()[0] if (
            chunk["signature"] or chunk["symbol"]) else chunk["symbol"]
        entries.append(MapEntry(path, chunk["start_line"], chunk["symbol"], signature, rank))
    entries.sort(key=lambda e: (-e.rank, e.path, e.line))
    return entries


def _line(entry: MapEntry) -> str:
    return f"{entry.line:6d}│ {entry.signature[:160]}"
