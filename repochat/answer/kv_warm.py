"""Compute a repository's KV pieces ahead of its questions: `repochat index --kv` and the watcher's refresh.

A piece's KV depends only on the head and its own tokens (engine/pieces.py), so it can be computed without
assembling any context: the main sequence holds the head alone, each missing piece is prefilled behind it in the
scratch sequence, saved in the page store (atomically: a kill -9 keeps every piece written before it) and dropped.
The context only has to hold the head and the largest piece, however large the repository.

Which pieces: those the next `repochat ask` (effort auto) would assemble. Where it puts the whole repository in the
context, one piece per file, tokenized exactly as `ask` renders it (answer.prefix.plan_and_prefix); where it retrieves, one
piece per index chunk rendered as an excerpt (Prompter.excerpts: a retrieved excerpt is always a whole chunk). The
repository map that starts a retrieved context depends on the question and is left out. The files the repo map
ranks most central come first, so that an interrupted warm-up has done the most useful part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..callbacks import Progress
from ..config import Settings
from ..engine.llama import SEQ_PAGE, LlamaContext
from ..engine.pagestore import PageStore
from ..engine.pieces import PIECE_INDEX, piece_keys, piece_store_identity, prefill_alone
from ..engine.planner import (PROMPT_ROOM, Plan, answers_whole, auto_refuses_whole, context_bucket, make_plan,
                              pieces_sound)
from ..engine.reports import PrefixStats
from ..engine.session import Engine, cache_identity
from ..engine.throughput import Sample
from ..errors import IndexMissing, RepochatError
from ..index.store import IndexStore
from .prompt import Prompt, Prompter
from .render import render_block
from .prefix import Repository, estimated_tokens, plan_and_prefix
from ..retrieve.repomap import rank_definitions

Check = Callable[[], None]
STAGE = "warm"  # the on_progress stage of the pieces computed here (progress.LABELS)


@dataclass
class Pieces:
    """What to warm: the head, then (path, tokens) of each distinct piece, most central file first."""

    mode: str  # "whole" (one piece per file) or "retrieval" (one per index chunk)
    plan: Plan
    head: list[int]
    pieces: list[tuple[str, list[int]]]
    whole: Prompt | None = None  # whole: the prompt of the ask, its pieces in the ask's order
    left_out: int = 0  # retrieval: chunks too large for any retrieved context


@dataclass
class WarmReport:
    """What a warm-up did; the head counts as one of the pieces, as in `repochat status`."""

    mode: str = ""
    kv_unit: str = "piece"  # "page": prefix pages (kv_pieces off, or a model whose cache cannot shift)
    pieces: int = 0
    computed: int = 0
    cached: int = 0  # found on disk (or, assembled in memory, kept there)
    tokens: int = 0
    computed_tokens: int = 0
    left_out: int = 0
    seconds: float = 0.0
    skipped: str = ""  # why nothing was warmed
    notices: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, stats: PrefixStats, mode: str, seconds: float) -> WarmReport:
        """The report of an assembly in the context (Engine.load_context)."""
        return cls(mode, stats.unit, stats.pages_total, stats.pages_prefilled,
                   stats.pages_in_memory + stats.pages_restored,
                   stats.memory_tokens + stats.restored_tokens + stats.prefilled_tokens, stats.prefilled_tokens,
                   seconds=seconds, notices=list(stats.notices))

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "kv_unit": self.kv_unit, "pieces": self.pieces, "pieces_computed": self.computed,
                "pieces_cached": self.cached, "tokens": self.tokens, "computed_tokens": self.computed_tokens,
                "pieces_left_out": self.left_out, "seconds": round(self.seconds, 3), "skipped": self.skipped,
                "notices": self.notices}


def warm_pieces(engine: Engine, settings: Settings, wanted: Pieces, on_progress: Progress | None = None,
                check: Check | None = None) -> WarmReport:
    """Compute and save every piece of ``wanted`` that is not on disk yet, in a context that holds the head and
    one piece at a time. ``check`` runs before each piece and may raise to stop; so may ``on_progress``, called
    after each one. The caller has checked that the engine's cache can shift positions."""
    began = time.monotonic()
    store = engine.store(settings, pieces=True)
    units = [wanted.head, *(tokens for _path, tokens in wanted.pieces)]
    keys = piece_keys(engine.identity, wanted.head, units[1:])
    missing = [unit for unit in range(1, len(units)) if not store.exists(PIECE_INDEX, keys[unit])]
    head_missing = not store.exists(PIECE_INDEX, keys[0])
    report = WarmReport(wanted.mode, pieces=len(units), cached=len(units) - len(missing) - head_missing,
                        tokens=sum(len(unit) for unit in units), left_out=wanted.left_out)
    if missing or head_missing:
        largest = max((len(units[unit]) for unit in missing), default=0)
        engine.ensure_context(context_bucket(len(wanted.head) + largest, wanted.plan.context_limit))
        head = engine.load_pieces(wanted.head, [], store)  # the main sequence: the head alone (saved)
        report.computed, report.computed_tokens = head.pages_prefilled, head.prefilled_tokens
        report.notices += head.notices
        _compute(engine, store, units, keys, missing, report, on_progress, check or (lambda: None))
    report.seconds = time.monotonic() - began
    return report


def _compute(engine: Engine, store: Any, units: list[list[int]], keys: list[str], missing: list[int],
             report: WarmReport, on_progress: Progress | None, check: Check) -> None:
    """Prefill each missing piece behind the head and save it; the main sequence keeps the head alone."""
    context = engine.context
    assert context is not None
    protect = set(keys)  # the LRU bound evicts other caches' pieces before this repository's
    timings: list[Sample] = []
    try:
        for done, unit in enumerate(missing, 1):
            check()
            began = time.monotonic()
            data = _piece_alone(context, units[unit], len(units[0]), check)
            timings.append(Sample(len(units[unit]), len(units[0]), time.monotonic() - began))
            if not store.save(PIECE_INDEX, keys[unit], len(units[unit]), data, protect):
                report.notices.append("KV cache size limit reached: later pieces are not saved (raise kv_cache_size)")
                return
            report.computed += 1
            report.computed_tokens += len(units[unit])
            if on_progress:
                on_progress(STAGE, done, len(missing))
    finally:
        engine.remember(timings)


def _piece_alone(context: LlamaContext, piece: list[int], head_tokens: int, check: Check) -> bytearray:
    """The cells of ``piece`` prefilled alone behind the head (held by the main sequence), with ``check`` between
    two batches: a request waiting for the engine waits for one batch, not for a whole large file. Nothing is left
    behind."""
    try:
        return prefill_alone(context, piece, head_tokens, check)
    finally:
        context.seq_remove(SEQ_PAGE)


def pieces_to_warm(repo: Repository, settings: Settings, prompter: Prompter, model_path: Path,
                   check: Check | None = None) -> Pieces:
    """The head and the pieces the next `ask` (effort auto) would draw on, most central file first; decided as
    ask._plan_prompt decides, except that a whole-repository prefill is never too slow here (it is what this
    computes ahead). Only where pieces are sound (planner.pieces_sound): with prefix pages a file's tokens are not
    a unit of the cache."""
    check = check or (lambda: None)
    if _whole_considered(repo, settings, prompter, model_path):
        plan, whole = plan_and_prefix(repo, prompter, model_path, settings, "auto")
        if whole is not None:
            files = list(zip((f.path for f in repo.files), whole.pieces))
            return Pieces("whole", plan, whole.head, _distinct(_central_first(repo.root, settings, files)), whole)
    else:
        plan = make_plan(model_path, estimated_tokens(repo, prompter), settings)
    check()
    if not settings.kv_pieces_retrieval:  # retrieved contexts are prefilled in one pass: no excerpt pieces
        return Pieces("retrieval", plan, prompter.head, [])
    return _excerpt_pieces(repo.root, settings, prompter, plan)


def _whole_considered(repo: Repository, settings: Settings, prompter: Prompter, model_path: Path) -> bool:
    """Whether auto puts the whole repository in where it fits (ask._plan_prompt: a model that answers better
    from a retrieved context gets one, unless the repository is no bigger than that context)."""
    return answers_whole(model_path) or not auto_refuses_whole(model_path, settings, estimated_tokens(repo, prompter))


def _excerpt_pieces(root: Path, settings: Settings, prompter: Prompter, plan: Plan) -> Pieces:
    """Every index chunk as a retrieved excerpt's piece (those no retrieved context could hold left out), most
    central file first, each file's chunks in line order."""
    store = IndexStore.open(settings.index_path(root))
    most = plan.context_limit - PROMPT_ROOM - settings.max_answer_tokens  # the largest retrieved context (high)
    excerpts = chunk_pieces(store, prompter)
    fitting = [(path, tokens) for path, tokens in excerpts if len(tokens) <= most]
    order = central_paths(store)
    fitting.sort(key=lambda item: order.get(item[0], len(order)))  # stable: each file's chunks in line order
    return Pieces("retrieval", plan, prompter.head, _distinct(fitting), left_out=len(excerpts) - len(fitting))


def excerpt_cache_state(repo: Repository, settings: Settings, prompter: Prompter, model_path: Path, plan: Plan,
                        whole: Prompt | None) -> dict[str, Any]:
    """For `repochat status`, given its whole-repository ``plan`` and prompt (None: retrieval): where the next ask
    retrieves, of the pieces `index --kv` warms (the head and the index chunks as excerpts), how many are on disk;
    {} where it puts the whole repository in, or there is no index."""
    if not (settings.kv_pieces_retrieval and pieces_sound(model_path, settings)) or (
            whole is not None and _whole_considered(repo, settings, prompter, model_path)):
        return {}
    try:
        wanted = _excerpt_pieces(repo.root, settings, prompter, plan)
    except IndexMissing:
        return {}
    identity = cache_identity(model_path, settings)
    store = PageStore(Path(settings.cache_dir), piece_store_identity(identity), settings.kv_cache_size)
    units = [wanted.head, *(tokens for _path, tokens in wanted.pieces)]
    present = [store.exists(PIECE_INDEX, key) for key in piece_keys(identity, wanted.head, units[1:])]
    return {"kv_excerpts": len(units), "kv_excerpts_cached": sum(present),
            "kv_excerpt_tokens": sum(len(unit) for unit in units),
            "kv_excerpt_tokens_cached": sum(len(unit) for unit, found in zip(units, present) if found)}


def chunk_pieces(store: IndexStore, prompter: Prompter) -> list[tuple[str, list[int]]]:
    """Every chunk of the index as the piece of a retrieved excerpt: the tokens Prompter.excerpts gives it."""
    rows = store.table("chunks").search().select(["path", "start_line", "text"]).limit(None).to_arrow().to_pylist()
    rows.sort(key=lambda row: (row["path"], row["start_line"]))
    return [(row["path"], prompter.content(render_block(row["path"], row["text"], row["start_line"])))
            for row in rows]


def central_paths(store: IndexStore) -> dict[str, int]:
    """Each file's place in the repo map's ranking (0: the most central); files without definitions are absent."""
    order: dict[str, int] = {}
    for entry in rank_definitions(store):
        order.setdefault(entry.path, len(order))
    return order


def _central_first(root: Path, settings: Settings, files: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
    """Files in repo-map order where there is an index; as they come (stability order) where there is none."""
    try:
        order = central_paths(IndexStore.open(settings.index_path(root)))
    except IndexMissing:
        return files
    return sorted(files, key=lambda item: order.get(item[0], len(order)))


def _distinct(pieces: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
    """Pieces with the same tokens (a file copied, two identical chunks) share their KV: computed once."""
    seen: set[tuple[int, ...]] = set()
    kept = []
    for path, tokens in pieces:
        if tuple(tokens) not in seen:
            seen.add(tuple(tokens))
            kept.append((path, tokens))
    return kept


def kv_fits_cache(model_path: Path, settings: Settings, repo_tokens: int) -> tuple[bool, str]:
    """index_kv = auto: whether the repository's KV (tokens times the model's KV bytes per token) fits in
    kv_cache_size, and a line saying so."""
    try:
        plan = make_plan(model_path, repo_tokens, settings)
    except RepochatError as exc:
        return False, f"no plan: {exc}"
    needed = repo_tokens * plan.kv_bytes_per_token
    fits = needed <= settings.kv_cache_size
    return fits, (f"the repository's KV (~{_gib(needed)}) {'fits in' if fits else 'exceeds'} kv_cache_size "
                  f"({_gib(settings.kv_cache_size)})")


def _gib(size: int) -> str:
    return f"{size / 1024**3:.2f} GiB" if size >= 1024**3 else f"{size / 1024**2:.0f} MiB"
