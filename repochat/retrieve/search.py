"""Hybrid search: six ranked lists fused by weighted reciprocal rank — LanceDB full-text (BM25) over the text, over
the definition names and parameters alone, and over the code's identifiers without its doc; definitions named
exactly in the query, and those it writes as calls; and MiniLM vectors."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexError_
from ..index.embedder import Embedder, load_embedder
from ..index.identifiers import searchable
from ..index.store import IndexStore, sql_quote
from .symbols import find_symbols

MODES = ("hybrid", "fts", "vector")
RRF_K = 20  # reciprocal-rank constant: lower than the usual 60, so a list's first places count for more
CANDIDATES = 50  # per leg, before fusion
SCORE_FLOOR = 0.2  # a full-text row scoring under this share of its list's best is left out of the fusion
# Fusion weights per ranked list, tuned on the retrieval evaluation (tests/bench/eval_retrieval.py). The name field
# (definition names and parameters) and the code field (the chunk's identifiers without its own doc) are the
# strongest single lists; the whole text still carries docs and comments, which the evaluation's stripped needles lack.
# A name written as a call, `parse_config()`, is one the writer has in mind (a question about it, or a doc comment's
# own usage example): it counts as much as the strongest lists; a bare name that is also an English word counts less.
WEIGHTS = {"text": 0.5, "names": 2.0, "exact": 0.5, "called": 2.0, "vector": 1.0, "code": 2.0}
# Tests, docs, examples and changelogs repeat the words of the code they describe; a question about code is
# usually about the code itself, so their fused score is scaled down (they still show up when nothing else matches).
SECONDARY_PATHS = re.compile(
    r"(^|/)(tests?|testing|spec|docs?|examples?|samples?|benchmarks?)/|(^|/)test_[^/]*$|_(test|spec)\.\w+$"
    r"|\.(md|rst|txt|adoc)$|(^|/)(CHANGES|CHANGELOG|HISTORY|NEWS)[^/]*$", re.I)
SECONDARY_FACTOR = 0.7
MAX_VECTOR_QUERY_CHARS = 600  # the embedder reads 128 tokens at most; a longer query only costs tokenizing
_COLUMNS = ["path", "language", "kind", "symbol", "start_line", "end_line", "text", "context", "signature",
            "doc", "tokens", "embed_key"]
_SPAN_COLUMNS = ["path", "start_line", "end_line"]
# A doc comment's cross-references (reST :func:`x`, JSDoc {@link x}, Rust [`x`]) point at other definitions, not at
# the one described: they do not count as naming it.
_CROSS_REFERENCE = re.compile(r":\w+:`[^`]*`|\{@link[^}]*\}|\[`[^`\]]*`\]")
_MARKUP = re.compile(r":\w+:|\.\. \w+(::)?|``?|\*\*?")  # reST roles and directives, literals, emphasis
_CODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
_CALLED_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]{3,})\(")


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


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="repochat-search")


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
    names, called = names_in(query), called_in(query)
    query = _MARKUP.sub(" ", query)
    jobs: dict[str, Any] = {}
    if mode in ("hybrid", "fts"):
        jobs["text"] = lambda: _fts(store, query, where, "search_text")
        jobs["names"] = lambda: _fts(store, query, where, "names")
        jobs["code"] = lambda: _fts(store, query, where, "code")
        jobs["exact"] = lambda: _exact_names(store, names, where)
        jobs["called"] = lambda: _exact_names(store, called, where)
    if mode in ("hybrid", "vector") and store.has_vectors():
        model = embedder or cached_embedder(embedding_model)
        jobs["vector"] = lambda: _vector(store, query, where, model)
    elif mode == "vector":
        raise IndexError_("no vectors in the index yet; run `repochat index` (without --no-embed) first")
    # The lists are independent and LanceDB and ONNX Runtime release the GIL: run them side by side.
    futures = {name: _POOL.submit(job) for name, job in jobs.items() if WEIGHTS.get(name, 1.0) > 0}
    legs = {name: future.result() for name, future in futures.items()}
    ranked = fuse(legs)[:k]
    rows = _full_rows(store, [row for row, _ in ranked])
    return [_hit(rows[_span(row)], score) for row, score in ranked if _span(row) in rows]


Span = tuple[str, int, int]  # path, start_line, end_line: what identifies a chunk


def _span(row: dict[str, Any]) -> Span:
    return row["path"], row["start_line"], row["end_line"]


def fuse(legs: dict[str, list[dict[str, Any]]]) -> list[tuple[dict[str, Any], float]]:
    """Weighted reciprocal rank fusion of ranked row lists (a row is a path and line range), with the path prior."""
    scores: dict[Span, float] = {}
    rows: dict[Span, dict[str, Any]] = {}
    for name, leg in legs.items():
        for rank, row in enumerate(leg):
            key = _span(row)
            scores[key] = scores.get(key, 0.0) + WEIGHTS.get(name, 1.0) / (RRF_K + rank + 1)
            rows.setdefault(key, row)
    for key in scores:
        if SECONDARY_PATHS.search(key[0]):
            scores[key] *= SECONDARY_FACTOR
    ranked = sorted(scores, key=lambda key: -scores[key])
    return [(rows[key], scores[key]) for key in ranked]


def _full_rows(store: IndexStore, ranked: list[dict[str, Any]]) -> dict[Span, dict[str, Any]]:
    """The whole rows of the chunks that made the cut, taken by row id (the ranked lists carry only where chunks
    are: a list of 50 whole rows costs more to read than the search that ranked them)."""
    if not ranked:
        return {}
    rows = store.table("chunks").take_row_ids([row["_rowid"] for row in ranked]).select(_COLUMNS).to_list()
    return {_span(row): row for row in rows}


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


def _fts(store: IndexStore, query: str, where: str | None, column: str) -> list[dict[str, Any]]:
    words = _fts_query(query)
    if not words:
        return []
    search = store.table("chunks").search(words, query_type="fts", fts_columns=column).select(_SPAN_COLUMNS) \
        .with_row_id(True)
    if where:
        search = search.where(where, prefilter=True)
    rows = search.limit(CANDIDATES).to_list()
    # Reciprocal rank ignores scores: in a short list a chunk sharing one common word with the query would rank
    # second, and count as much as a close match. Rows far below the list's best match are dropped instead.
    floor = rows[0]["_score"] * SCORE_FLOOR if rows else 0.0
    return [row for row in rows if row["_score"] >= floor]


def names_in(query: str) -> list[str]:
    """Identifiers a query names itself, in order of first mention; a doc comment's cross-references to other
    definitions do not count."""
    return list(dict.fromkeys(_CODE_NAME.findall(_CROSS_REFERENCE.sub(" ", query))))[:30]


def called_in(query: str) -> list[str]:
    """Identifiers the query writes as calls (``name(``), in order of first mention, cross-references left out."""
    return list(dict.fromkeys(_CALLED_NAME.findall(_CROSS_REFERENCE.sub(" ", query))))[:30]


def _exact_names(store: IndexStore, names: list[str], where: str | None) -> list[dict[str, Any]]:
    """Definitions named exactly (case and all) by the query, in order of first mention: a doc comment or a
    question that says `ParseConfig` or `parse_config` most likely means that definition."""
    if not names:
        return []
    if where is None:
        return _named_rows(store, names)[:CANDIDATES]
    clause = f"symbol IN ({', '.join(sql_quote(n) for n in names)}) OR " + " OR ".join(
        f"symbol LIKE {sql_quote('%.' + n)}" for n in names)
    rows = store.table("chunks").search().where(f"({clause}) AND ({where})").select([*_SPAN_COLUMNS, "symbol"]) \
        .with_row_id(True).limit(CANDIDATES * 4).to_list()
    order = {name: i for i, name in enumerate(names)}
    rows.sort(key=lambda row: (order.get(row["symbol"].rsplit(".", 1)[-1], len(order)), row["path"]))
    return rows[:CANDIDATES]


def _named_rows(store: IndexStore, names: list[str]) -> list[dict[str, Any]]:
    """Chunks whose own symbol is one of ``names`` (bare: ``parse``), name by name."""
    by_name = store.chunk_directory().by_name
    return [row for name in names for row in sorted(by_name.get(name, ()), key=lambda row: row["path"])]


def definitions_named(store: IndexStore, names: list[str], per_name: int = 3) -> list[SearchHit]:
    """The chunks holding the definitions of ``names`` (``parse_config``, or qualified: ``Queue.requeue``) from the
    symbols table, at most ``per_name`` each, in the order of ``names``: a method of a class small enough to be
    one chunk is found in the class's chunk."""
    directory = store.chunk_directory()
    ranked: dict[Span, dict[str, Any]] = {}
    for name in names:
        for symbol in find_symbols(store, name, role="definition", limit=per_name):
            row = directory.chunk_at(symbol.path, symbol.line)
            if row is not None:
                ranked.setdefault(_span(row), row)
    rows = _full_rows(store, list(ranked.values()))
    return [_hit(rows[span], 1.0) for span in ranked if span in rows]


def _fts_query(query: str) -> str:
    """Words only: the full-text parser gives punctuation meaning, and identifier parts widen the match."""
    return " ".join(re.findall(r"\w+", searchable(query)))


def _vector(store: IndexStore, query: str, where: str | None, embedder: Embedder) -> list[dict[str, Any]]:
    vector = embedder.embed([query[:MAX_VECTOR_QUERY_CHARS]])[0]
    keys, matrix = store.vector_matrix()
    scores = np.einsum("ij,j->i", matrix, vector)  # not `@`: BLAS threads cost more than they save here
    top = np.argpartition(-scores, min(CANDIDATES * 2, len(keys) - 1))[:CANDIDATES * 2]
    nearest = [keys[i] for i in sorted(top, key=lambda i: -scores[i])]
    if not nearest:
        return []
    if where is None:  # resolved in memory: a query for the chunks behind 100 keys costs more than all the rest
        by_key = store.chunk_directory().by_embed_key
        return [row for key in nearest for row in by_key.get(key, ())][:CANDIDATES]
    order = {key: rank for rank, key in enumerate(nearest)}
    clause = f"embed_key IN ({', '.join(sql_quote(key) for key in order)}) AND ({where})"
    rows = store.table("chunks").search().where(clause).select([*_SPAN_COLUMNS, "embed_key"]).with_row_id(True) \
        .limit(None).to_list()
    rows.sort(key=lambda row: order[row["embed_key"]])
    return rows[:CANDIDATES]


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(path=row["path"], start_line=row["start_line"], end_line=row["end_line"],
                     symbol=row["symbol"], kind=row["kind"], language=row["language"], score=round(score, 6),
                     text=row["text"], context=row["context"], signature=row["signature"], tokens=row["tokens"])
