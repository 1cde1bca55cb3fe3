"""Search against an index in S3 next to the local index of the same repository: top-10 agreement and latency.

    python tests/bench/bench_s3_search.py [PATH] [--queries N] [--embed]

PATH (default: this repochat checkout; a git repository is cloned first, so that edits made meanwhile cannot make the
two indexes differ) is indexed twice, into a temporary local folder and into a bucket of a real
S3-compatible server started on 127.0.0.1 (moto's server mode, tests/s3_support.py). N queries (definition names and
their first doc line, as bench_index.py samples them) run against both. Printed: the cold index time of each; the share
of queries whose top-10 (path, lines) is identical in both, and the mean overlap; p50/p95 latency of a search on an
open index (a server, `repochat serve`) and of opening the index and searching once (a `repochat search` command).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: s3_support

from bench_index import percentile, sample_queries  # noqa: E402
from s3_support import aws_environ, new_bucket, s3_server  # noqa: E402

from repochat.config import Settings, load_settings  # noqa: E402
from repochat.index.indexer import embed_pending, update_index  # noqa: E402
from repochat.index.store import IndexStore  # noqa: E402
from repochat.retrieve.search import cached_embedder, search  # noqa: E402

Top = list[tuple[str, int, int]]


def build(root: Path, settings: Settings, label: str) -> None:
    started = time.perf_counter()
    summary = update_index(root, settings)
    embedded = embed_pending(IndexStore.open(settings.index_path(root), pinned=False), settings) \
        if settings.embeddings else 0
    print(f"{label}: indexed {summary.files} files, {summary.chunks} chunks, {embedded} vectors in "
          f"{time.perf_counter() - started:.1f} s")


def snapshot(path: Path, into: Path) -> Path:
    """A git repository's committed tree (a clone), else the folder itself."""
    if not (path / ".git").exists():
        return path
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{path}", str(into)], check=True)
    return into


def timed(queries: list[str], run: Callable[[str], Top]) -> tuple[list[Top], list[float]]:
    run(queries[0])  # warm: caches, the embedding session, the connection
    tops, times = [], []
    for query in queries:
        started = time.perf_counter()
        tops.append(run(query))
        times.append((time.perf_counter() - started) * 1000)
    return tops, times


def top10(store: IndexStore, query: str, mode: str) -> Top:
    return [(hit.path, hit.start_line, hit.end_line) for hit in search(store, query, k=10, mode=mode)]


def report(mode: str, how: str, local: tuple[list[Top], list[float]], remote: tuple[list[Top], list[float]]) -> None:
    same = sum(a == b for a, b in zip(local[0], remote[0]))
    overlap = statistics.mean(len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(local[0], remote[0]))
    print(f"{mode:6s} {how:14s} top-10 identical {same}/{len(local[0])} (mean overlap {overlap:.3f})  "
          f"local p50 {statistics.median(local[1]):7.1f} ms p95 {percentile(local[1], 0.95):7.1f} ms  |  "
          f"s3 p50 {statistics.median(remote[1]):7.1f} ms p95 {percentile(remote[1], 0.95):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, nargs="?", default=Path(__file__).resolve().parents[2])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--embed", action="store_true", help="compute vectors and compare hybrid search too")
    args = parser.parse_args()
    with s3_server() as endpoint, tempfile.TemporaryDirectory() as local_dir, tempfile.TemporaryDirectory() as work:
        root = snapshot(args.path.resolve(), Path(work) / "repo")
        os.environ.update(aws_environ(endpoint))
        bucket = new_bucket(endpoint)
        local = load_settings(root, {"index_dir": local_dir, "embeddings": args.embed})
        remote = load_settings(root, {"index_uri": f"s3://{bucket}/bench", "embeddings": args.embed})
        build(root, local, "local")
        build(root, remote, f"s3 ({endpoint})")
        queries = sample_queries(IndexStore.open(local.index_path(root)), args.queries)
        if args.embed:
            cached_embedder(local.embedding_model)
        for mode in ("fts", "hybrid") if args.embed else ("fts",):
            stores = [IndexStore.open(s.index_path(root)) for s in (local, remote)]
            results = [timed(queries, lambda q, store=store: top10(store, q, mode)) for store in stores]
            report(mode, "open index", results[0], results[1])
            results = [timed(queries, lambda q, s=s: top10(IndexStore.open(s.index_path(root)), q, mode))
                       for s in (local, remote)]
            report(mode, "open + search", results[0], results[1])


if __name__ == "__main__":
    main()
