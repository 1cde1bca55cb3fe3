"""Hybrid search: LanceDB full-text (BM25) and vector search, fused by reciprocal rank."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import ConfigError, IndexError_
from ..index.embedder import Embedder, load_embedder
from ..index.identifiers import searchable
from ..index.store import IndexStore, sql_quote

MODES = ("hybrid", "fts", "vector")
RRF_K = 60  # the usual reciprocal-rank constant: damps the head so one list cannot dominate
CANDIDATES = 50  # per leg, before fusion
_COLUMNS = ["path", "language", "kind", "symbol", "start_line", "end_line", "text", "context", "signature",
            "doc", "tokens", "embed_key"]


@dataclass(frozen=True)
class SearchHit:
    path: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    score: float
    text: str
    context: str = ""
    signature: str = ""
    tokens: int = 0

    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"


@lru_cache(maxsize=2)
def cached_embedder(name: str, threads: int = 0) -> Embedder:
    return load_embedder(name, threads)


def search(store: IndexStore, query: str, k: int = 10, mode: str = "hybrid", path_glob: str | None = None,
           language: str | None = None, embedding_model: str = "minilm",
           embedder: Embedder | None = None) -> list[SearchHit]:
    """The k best chunks for query. Vector search needs vectors; hybrid falls back to full-text without them."""
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r} (use one of {', '.join(MODES)})")
    if not query.strip():
        return []
    where = _filter(path_glob, language)
    legs: list[list[dict[str, Any]]] = []
    if mode in ("hybrid", "fts"):
        legs.append(_fts(store, query, where))
    if mode in ("hybrid", "vector") and store.has_vectors():
        legs.append(_vector(store, query, where, embedder or cached_embedder(embedding_model)))
    elif mode == "vector":
        raise IndexError_("no vectors in the index yet; run `repochat index` (without --no-embed) first")
    return [_hit(row, score) for row, score in fuse(legs)[:k]]


def fuse(legs: list[list[dict[str, Any]]]) -> list[tuple[dict[str, Any], float]]:
    """Reciprocal rank fusion of ranked row lists; a row is identified by path and line range."""
    scores: dict[tuple[str, int, int], float] = {}
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    for leg in legs:
        for rank, row in enumerate(leg):
            key = (row["path"], row["start_line"], row["end_line"])
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
            rows.setdefault(key, row)
    ranked = sorted(scores, key=lambda key: -scores[key])
    return [(rows[key], scores[key]) for key in ranked]


def glob_to_regex(glob: str) -> str:
    """A gitignore-like glob as an anchored regex: '*' stays in a folder, '**' crosses folders, and a glob without
    '/' matches a file name at any depth."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    prefix = "" if "/" in glob.rstrip("/") else "(.*/)?"
    suffix = "(/.*)?" if glob.endswith("/") or "*" not in glob else ""
    return f"^{prefix}{''.join(out).rstrip('/')}{suffix}$"


def _filter(path_glob: str | None, language: str | None) -> str | None:
    clauses = []
    if path_glob:
        clauses.append(f"regexp_like(path, {sql_quote(glob_to_regex(path_glob))})")
    if language:
        clauses.append(f"language = {sql_quote(language.lower())}")
    return " AND ".join(clauses) or None


def _fts(store: IndexStore, query: str, where: str | None) -> list[dict[str, Any]]:
    search = store.table("chunks").search(_fts_query(query), query_type="fts").select(_COLUMNS)
    if where:
        search = search.where(where, prefilter=True)
    return search.limit(CANDIDATES).to_list()


def _fts_query(query: str) -> str:
    """Words only: the full-text parser gives punctuation meaning, and identifier parts widen the match."""
    return " ".join(re.findall(r"\w+", searchable(query)))


def _vector(store: IndexStore, query: str, where: str | None, embedder: Embedder) -> list[dict[str, Any]]:
    vector = embedder.embed([query])[0]
    nearest = store.table("vectors").search(vector).select(["embed_key"]).limit(CANDIDATES * 2).to_list()
    order = {row["embed_key"]: i for i, row in enumerate(nearest)}
    if not order:
        return []
    clause = f"embed_key IN ({', '.join(sql_quote(key) for key in order)})"
    rows = store.table("chunks").search().where(f"{clause} AND ({where})" if where else clause) \
        .select(_COLUMNS).limit(None).to_list()
    rows.sort(key=lambda row: order[row["embed_key"]])
    return rows[:CANDIDATES]


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(path=row["path"], start_line=row["start_line"], end_line=row["end_line"],
                     symbol=row["symbol"], kind=row["kind"], language=row["language"], score=round(score, 6),
                     text=row["text"], context=row["context"], signature=row["signature"], tokens=row["tokens"])
