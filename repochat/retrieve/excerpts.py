"""What goes into the context when the whole repository does not fit: the definitions the question names, then the
best hybrid-search hits, as whole chunks (exact file lines, so citations can be checked), within a token budget. A
question about files ("which files would need to change ...") gets the best chunk of each of the files ranked best
for it (repochat.retrieve.files) first: the answer names them (repochat.answer.pick), so they must be shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import IndexMissing
from ..index.indexer import embed_pending, update_index
from ..index.lock import IndexBusy
from ..index.store import IndexStore
from .questions import asks_for_files, definition_query, file_query, question_kind
from .files import FileHit, best_chunks, rank_files
from .repomap import rank_definitions, render_map
from .search import SearchHit, definitions_named, search

MAP_PATH = "repository map"  # not a file: citations of it are flagged as not in the context
MAP_TOKENS = 400  # at most this much of the budget goes to the map ...
MAP_SHARE = 8  # ... and at most an eighth of it
SEARCH_DEPTH = 40  # hits considered; the budget usually ends the list first
RANKED_FILES = 4  # a question about files: the best chunks of this many best-ranked files (the pick's choices)
EMBED_ON_ASK_LIMIT = 400  # pending vectors computed before answering (~5 s); more are left to `repochat index`
LINE_OVERHEAD_TOKENS = 2  # the "123|" prefix each line gets when rendered
HEADER_TOKENS = 16
UNRANKED = 1 << 30
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Excerpt:
    path: str
    start_line: int
    end_line: int
    text: str
    symbol: str = ""  # the definition the excerpt holds, if it is one
    kind: str = ""  # its index kind; "map" for the repository map
    rank: int = UNRANKED  # its place in the search ranking (a definition only named by the question is not in it)
    file_rank: int = UNRANKED  # a question about files: its file's place in the file ranking


def retrieval_excerpts(root: Path, settings: Settings, question: str, budget_tokens: int) -> list[Excerpt]:
    """A repo map of the files around the answer, then excerpts for the question, most relevant first; together
    within budget_tokens (estimated)."""
    store = fresh_index(root, settings)
    ranked = search(store, definition_query(question), k=SEARCH_DEPTH, embedding_model=settings.embedding_model)
    files = ranked_files(store, question, settings)
    map_budget = min(MAP_TOKENS, budget_tokens // MAP_SHARE)
    chosen = _fit(best_chunks(store, files) + _best_definition(ranked, question) + named_definitions(store, question)
                  + ranked, budget_tokens - map_budget)
    overview = repo_map_excerpt(store, {h.path for h in chosen}, map_budget)
    return ([overview] if overview else []) + _ranked_excerpts(chosen, ranked, files)


def _best_definition(ranked: list[SearchHit], question: str) -> list[SearchHit]:
    """A question asking which function: the definition search ranks first, which its answer starts with
    (repochat.answer.pick), so it must be shown even where the definitions the question names fill the budget (a
    quoted description that names its siblings: rxjs' fromEvent lost to fromEventPattern that way)."""
    if question_kind(question) != "definition":
        return []
    return next(([hit] for hit in ranked if hit.symbol), [])


def ranked_candidates(root: Path, settings: Settings, question: str) -> list[Excerpt]:
    """For a question about the whole repository in the context: the chunks search ranks best for it and the best
    chunks of the files ranked best (a question about files), with their ranks, as retrieval would show them. The
    pick (repochat.answer.pick) chooses among them; the context already holds them all. An index that was never
    built is not built for this (whole-repository mode needs none): no candidates then."""
    try:
        IndexStore.open(settings.index_path(root))
    except IndexMissing:
        return []
    store = fresh_index(root, settings)
    ranked = search(store, definition_query(question), k=SEARCH_DEPTH, embedding_model=settings.embedding_model)
    files = ranked_files(store, question, settings)
    return _ranked_excerpts(best_chunks(store, files) + ranked, ranked, files)


def _ranked_excerpts(hits: list[SearchHit], ranked: list[SearchHit], files: list[FileHit]) -> list[Excerpt]:
    """``hits`` as excerpts, each with its place in the search ranking and its file's in the file ranking."""
    rank = {(h.path, h.start_line, h.end_line): index for index, h in reversed(list(enumerate(ranked)))}
    file_rank = {hit.path: index for index, hit in enumerate(files)}
    return [Excerpt(h.path, h.start_line, h.end_line, h.text, h.symbol, h.kind,
                    rank.get((h.path, h.start_line, h.end_line), UNRANKED), file_rank.get(h.path, UNRANKED))
            for h in hits]


def ranked_files(store: IndexStore, question: str, settings: Settings) -> list[FileHit]:
    """The files ranked best for a question about files, best first; none for any other question."""
    if not asks_for_files(question):
        return []
    return rank_files(store, file_query(question), k=RANKED_FILES, embedding_model=settings.embedding_model)


def repo_map_excerpt(store: IndexStore, focus: set[str], max_tokens: int) -> Excerpt | None:
    """The most important definitions, ranked towards the retrieved files: where the excerpts sit in the whole."""
    text, _used = render_map(rank_definitions(store, focus_paths=focus), max_tokens)
    return Excerpt(MAP_PATH, 1, text.count("\n") + 1, text, kind="map") if text else None


def _fit(candidates: list[SearchHit], budget_tokens: int) -> list[SearchHit]:
    chosen: list[SearchHit] = []
    used = 0
    for hit in candidates:
        cost = estimated_tokens(hit)
        if used + cost > budget_tokens or any(_overlaps(hit, other) for other in chosen):
            continue
        chosen.append(hit)
        used += cost
    return chosen


def fresh_index(root: Path, settings: Settings) -> IndexStore:
    """The index brought up to date (incremental, cheap when nothing changed), with vectors when few are missing.

    While another writer holds the index lock (a watcher, `repochat index`, a hook), the refresh is skipped rather
    than waited for: that writer is bringing the index up to date, and its last published snapshot is read. A
    read-only index (index_read_only) is read as its writer last published it."""
    if settings.index_read_only:
        return IndexStore.open(settings.index_path(root))
    try:
        summary = update_index(root, settings, wait=False)  # counts the vectors still missing
        if 0 < summary.vectors_pending <= EMBED_ON_ASK_LIMIT:
            embed_pending(IndexStore.open(settings.index_path(root), pinned=False), settings, wait=False)
    except IndexBusy:
        pass
    return IndexStore.open(settings.index_path(root))


def named_definitions(store: IndexStore, question: str) -> list[SearchHit]:
    """Chunks defining identifiers the question mentions (``parse_config``, ``Queue.requeue``): a question that
    names code is best answered with that code."""
    names = [m for m in dict.fromkeys(_NAME.findall(question)) if _looks_like_code(m)]
    return definitions_named(store, names)


def estimated_tokens(hit: SearchHit) -> int:
    return hit.tokens + LINE_OVERHEAD_TOKENS * (hit.end_line - hit.start_line + 1) + HEADER_TOKENS


def _looks_like_code(word: str) -> bool:
    """snake_case, camelCase, dotted or CapWords names; plain English words would match too many symbols."""
    return "_" in word or "." in word or (any(c.isupper() for c in word[1:]) and any(c.islower() for c in word))


def _overlaps(a: SearchHit, b: SearchHit) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line
