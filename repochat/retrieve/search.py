"""Hybrid search: six ranked lists — LanceDB full-text (BM25) over the text, over the definition names and
parameters alone, and over the code's identifiers without its doc; definitions named exactly in the query, and those
it writes as calls; and MiniLM vectors — combined by a linear scorer over each chunk's place and relative score in
each list, with weights fitted on the retrieval evaluation's cases (tests/bench/fit_fusion.py)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexStoreError
from ..index.embedder import Embedder, load_embedder
from ..index.identifiers import searchable
from ..index.schema import sql_quote
from ..index.store import IndexStore
from .symbols import find_symbols

MODES = ("hybrid", "fts", "vector")
LISTS = ("text", "names", "code", "exact", "called", "vector")
CANDIDATES = 50  # per list, before fusion
RANK_K = 20  # the n-th place in a list counts RANK_K / (RANK_K + n): 20/21 for the first, 1/2 for the 20th
# Weights of a chunk's place in a list and of its score relative to the list's best (1 for the exact and called
# lists, whose rows carry no score). Fitted by tests/bench/fit_fusion.py (listwise logistic regression, L2 0.003,
# weights kept >= 0) on the dev-needles suites and 80 generated needle cases from four other packages; on 80 cases
# from four packages it never saw, hit@1 went from 0.475 to 0.512 and hit@10 from 0.900 to 0.950 against the
# weighted reciprocal rank fusion used before. The text list's weights are fixed, not fitted:
# needle cases strip the wanted function's docstring, so there the text list only ever finds the neighbours whose
# docstrings repeat the query, and a fit learns to distrust it; a real question's words in a docstring are evidence.
RANK_WEIGHTS = {"text": 0.3, "names": 0.565, "code": 1.664, "exact": 0.261, "called": 2.078, "vector": 2.13}
SCORE_WEIGHTS = {"text": 0.0, "names": 2.793, "code": 1.636, "exact": 0.574, "called": 1.493, "vector": 0.0}
# Tests, docs, examples, changelogs and type stubs repeat the words and names of the code they describe; a question
# about code is usually about the code itself, so they rank lower (they still show up when nothing else matches).
SECONDARY_PATHS = re.compile(
    r"(^|/)(tests?|testing|spec|docs?|examples?|samples?|benchmarks?)/|(^|/)test_[^/]*$|_(test|spec)\.\w+$"
    r"|\.(md|rst|txt|adoc)$|(^|/)(CHANGES|CHANGELOG|HISTORY|NEWS)[^/]*$|\.pyi$|\.d\.ts$", re.I)
SECONDARY_WEIGHT = -3.651
MAX_VECTOR_QUERY_CHARS = 600  # the embedder reads 128 tokens at most; a longer query only costs tokenizing
_COLUMNS = ["path", "language", "kind", "symbol", "start_line", "end_line", "text", "context", "signature",
            "doc", "tokens", "embed_key"]
_SPAN_COLUMNS = ["path", "start_line", "end_line"]
# A query is text from a user or an agent: only its first MAX_QUERY_CHARS characters are searched (a question of a
# few pages; the full-text lists slow down with every extra word, and a megabyte of text is no longer a query).
MAX_QUERY_CHARS = 8_000
# A path is at most 4,096 bytes on Linux, so a longer glob matches nothing; and at a megabyte, its regex exceeds what
# LanceDB's regex engine compiles, which fails the whole query as if the index were damaged.
MAX_GLOB_CHARS = 4_096
# Every pattern below runs over the whole query, so each must take linear time in its length: a pattern that can
# start at every character of a long word and scan to the word's end each time (or backtrack over it) is quadratic,
# holds the GIL, and stalls a server. tests/test_search.py times them on adversarial megabyte inputs.
# A doc comment's cross-references (reST :func:`x` and ".. seealso::" up to the end of its sentence or of its indented
# lines, JSDoc {@link x}, Rust [`x`]) point at other definitions, not at the one described: they do not count as
# naming it. ({@link stops at the next '{': an unclosed one per start.)
_CROSS_REFERENCE = re.compile(r":\w+:`[^`]*`|\{@link[^{}]*\}|\[`[^`\]]*`\]"
                              r"|\.\. seealso::(?:[^\n]|\n[ \t])*?(?:\.(?=\s|$)|\n(?![ \t])|$)")
_MARKUP = re.compile(r":\w+:|\.\. \w+(::)?|``?|\*\*?")  # reST roles and directives, literals, emphasis
_CODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
# Starts only where a name starts (not inside one) and never gives characters back: one pass over each word.
_CALLED_NAME = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]{3,}+)\(")


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
    model = None
    if mode in ("hybrid", "vector") and store.has_vectors():
        model = embedder or cached_embedder(embedding_model)
    elif mode == "vector":
        raise IndexStoreError("no vectors in the index yet; run `repochat index` (without --no-embed) first")
    legs = ranked_lists(store, query, _filter(path_glob, language), full_text=mode != "vector", embedder=model)
    ranked = fuse(legs)[:k]
    rows = _full_rows(store, [row for row, _ in ranked])
    return [_hit(rows[_span(row)], score) for row, score in ranked if _span(row) in rows]


def ranked_lists(store: IndexStore, query: str, where: str | None = None, full_text: bool = True,
                 embedder: Embedder | None = None, candidates: int = CANDIDATES) -> dict[str, list[dict[str, Any]]]:
    """Each list's best chunks for ``query`` (its first MAX_QUERY_CHARS characters), best first: rows with path,
    lines, _rowid and _score (the list's own score; 1 for the exact and called lists). The vector list only with an
    ``embedder``. The full-text lists hold ``candidates`` chunks, the others CANDIDATES."""
    query = query[:MAX_QUERY_CHARS]
    names, called = names_in(query), called_in(query)
    query = _MARKUP.sub(" ", query)
    jobs: dict[str, Any] = {}
    if full_text:
        jobs["text"] = lambda: _fts(store, query, where, "search_text", candidates)
        jobs["names"] = lambda: _fts(store, query, where, "names", candidates)
        jobs["code"] = lambda: _fts(store, query, where, "code", candidates)
        jobs["exact"] = lambda: _exact_names(store, names, where)
        jobs["called"] = lambda: _exact_names(store, called, where)
    if embedder is not None:
        jobs["vector"] = lambda: _vector(store, query, where, embedder)
    # The lists are independent and LanceDB and ONNX Runtime release the GIL: run them side by side.
    futures = {name: _POOL.submit(job) for name, job in jobs.items()}
    return {name: future.result() for name, future in futures.items()}


def cut_notice(query: str) -> str | None:
    """What to tell the user when only the start of their query is searched; None when all of it is."""
    if len(query) <= MAX_QUERY_CHARS:
        return None
    return f"the query has {len(query):,} characters; only its first {MAX_QUERY_CHARS:,} were searched"


Span = tuple[str, int, int]  # path, start_line, end_line: what identifies a chunk


def _span(row: dict[str, Any]) -> Span:
    return row["path"], row["start_line"], row["end_line"]


def candidate_features(legs: dict[str, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Every chunk in any list, and its features: per list, its place (RANK_K / (RANK_K + place), 0 when absent)
    and its score relative to the list's best; then whether its path is secondary (tests, docs, stubs)."""
    rows: dict[Span, dict[str, Any]] = {}
    features: dict[Span, np.ndarray] = {}
    for column, name in enumerate(LISTS):
        leg = legs.get(name) or []
        best = leg[0]["_score"] if leg else 1.0
        for place, row in enumerate(leg):
            span = _span(row)
            if span not in features:
                rows[span] = row
                features[span] = np.zeros(2 * len(LISTS) + 1)
            vector = features[span]
            if vector[column] == 0:  # a chunk listed twice (two names) counts at its best place
                vector[column] = RANK_K / (RANK_K + place + 1)
                vector[len(LISTS) + column] = row["_score"] / best if best else 1.0
    for span, vector in features.items():
        vector[-1] = 1.0 if SECONDARY_PATHS.search(span[0]) else 0.0
    spans = list(rows)
    matrix = np.array([features[span] for span in spans]) if spans else np.zeros((0, 2 * len(LISTS) + 1))
    return [rows[span] for span in spans], matrix


def feature_weights() -> np.ndarray:
    return np.array([RANK_WEIGHTS[n] for n in LISTS] + [SCORE_WEIGHTS[n] for n in LISTS] + [SECONDARY_WEIGHT])


def fuse(legs: dict[str, list[dict[str, Any]]]) -> list[tuple[dict[str, Any], float]]:
    """All chunks of the ranked lists, best first, with their fused scores."""
    rows, features = candidate_features(legs)
    scores = features @ feature_weights()
    return [(rows[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")]


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
    if path_glob and len(path_glob) > MAX_GLOB_CHARS:
        raise ConfigError(f"path glob too long: {len(path_glob):,} characters (at most {MAX_GLOB_CHARS:,})")
    if path_glob:
        clauses.append(f"regexp_like(path, {sql_quote(glob_to_regex(path_glob))})")
    if language:
        clauses.append(f"language = {sql_quote(language.lower())}")
    return " AND ".join(clauses) or None


def _fts(store: IndexStore, query: str, where: str | None, column: str,
         candidates: int = CANDIDATES) -> list[dict[str, Any]]:
    words = _fts_query(query)
    if not words:
        return []
    search = store.table("chunks").search(words, query_type="fts", fts_columns=column).select(_SPAN_COLUMNS) \
        .with_row_id(True)
    if where:
        search = search.where(where, prefilter=True)
    return search.limit(candidates).to_list()


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
        return [{**row, "_score": 1.0} for row in _named_rows(store, names)[:CANDIDATES]]  # rows of a shared cache
    clause = f"symbol IN ({', '.join(sql_quote(n) for n in names)}) OR " + " OR ".join(
        f"symbol LIKE {sql_quote('%.' + n)}" for n in names)
    rows = store.table("chunks").search().where(f"({clause}) AND ({where})").select([*_SPAN_COLUMNS, "symbol"]) \
        .with_row_id(True).limit(CANDIDATES * 4).to_list()
    order = {name: i for i, name in enumerate(names)}
    rows.sort(key=lambda row: (order.get(row["symbol"].rsplit(".", 1)[-1], len(order)), row["path"]))
    return [{**row, "_score": 1.0} for row in rows[:CANDIDATES]]


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
    nearest = {keys[i]: float(scores[i]) for i in sorted(top, key=lambda i: -scores[i])}
    if not nearest:
        return []
    if where is None:  # resolved in memory: a query for the chunks behind 100 keys costs more than all the rest
        by_key = store.chunk_directory().by_embed_key
        found = [(row, score) for key, score in nearest.items() for row in by_key.get(key, ())]
    else:
        clause = f"embed_key IN ({', '.join(sql_quote(key) for key in nearest)}) AND ({where})"
        rows = store.table("chunks").search().where(clause).select([*_SPAN_COLUMNS, "embed_key"]) \
            .with_row_id(True).limit(None).to_list()
        found = sorted(((row, nearest[row["embed_key"]]) for row in rows), key=lambda pair: -pair[1])
    return [{**row, "_score": score} for row, score in found[:CANDIDATES]]  # copies: directory rows are shared


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(path=row["path"], start_line=row["start_line"], end_line=row["end_line"],
                     symbol=row["symbol"], kind=row["kind"], language=row["language"], score=round(score, 6),
                     text=row["text"], context=row["context"], signature=row["signature"], tokens=row["tokens"])
