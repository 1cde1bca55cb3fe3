"""Index benchmark: cold index, one-file incremental update, and query latency, on any folder.

    python tests/bench/bench_index.py PATH [--embed] [--queries N]

Prints seconds for the cold index (chunks + symbols + full-text index), the one-file update, and p50/p95 query
latency for full-text and (with --embed, after computing vectors) hybrid search. The index goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from repochat.config import load_settings
from repochat.index.indexer import embed_pending, update_index
from repochat.index.store import IndexStore
from repochat.retrieve.search import cached_embedder, search


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def query_latency(store: IndexStore, queries: list[str], mode: str) -> tuple[float, float]:
    search(store, queries[0], mode=mode)  # warm caches and the embedding session
    times = []
    for query in queries:
        started = time.perf_counter()
        search(store, query, k=10, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), percentile(times, 0.95)


def sample_queries(store: IndexStore, count: int) -> list[str]:
    """Natural queries from the index itself: definition names split into words plus their first doc line."""
    rows = store.table("chunks").search().select(["symbol", "doc"]).where("symbol != ''").limit(None) \
        .to_arrow().to_pylist()
    random.Random(7).shuffle(rows)
    queries = [" ".join(filter(None, [r["symbol"].replace("_", " ").replace(".", " "),
                                      (r["doc"] or "").split("\n")[0][:80]])) for r in rows[:count]]
    return queries or ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--embed", action="store_true", help="compute vectors and time hybrid queries too")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    root = args.path.resolve()
    with tempfile.TemporaryDirectory() as index_dir:
        settings = load_settings(root, {"index_dir": index_dir, "embeddings": args.embed})
        started = time.perf_counter()
        summary = update_index(root, settings)
        cold = time.perf_counter() - started
        print(f"cold index: {cold:.2f} s  ({summary.files} files, {summary.chunks} chunks, "
              f"{summary.symbols} symbols, skipped {summary.skipped})")

        victim = next(p for p in sorted(root.rglob("*.py")) if p.stat().st_size > 2000)
        backup = victim.read_bytes()
        try:
            victim.write_bytes(backup + b"\n\ndef added_by_benchmark():\n    return 42\n")
            started = time.perf_counter()
            update = update_index(root, settings)
            print(f"one-file update: {time.perf_counter() - started:.2f} s  ({update.parsed} file parsed)")
        finally:
            victim.write_bytes(backup)
            update_index(root, settings)

        store = IndexStore.open(settings.index_path(root))
        queries = sample_queries(store, args.queries)
        p50, p95 = query_latency(store, queries, "fts")
        print(f"fts query latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(queries)} queries")
        if args.embed:
            started = time.perf_counter()
            embedded = embed_pending(IndexStore.open(settings.index_path(root), pinned=False), settings)
            print(f"embedding: {embedded} chunks in {time.perf_counter() - started:.1f} s")
            store = IndexStore.open(settings.index_path(root))
            cached_embedder(settings.embedding_model)
            p50, p95 = query_latency(store, queries, "hybrid")
            print(f"hybrid query latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(queries)} queries")
        shutil.rmtree(index_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
