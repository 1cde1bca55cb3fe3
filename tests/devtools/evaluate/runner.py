"""Run cases against repochat's index (hybrid and full-text) and the BM25 window control, source by source."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import platformdirs

from repochat.callbacks import Progress
from repochat.config import Settings, load_settings
from repochat.index.indexer import embed_pending, update_index
from repochat.index.store import IndexStore
from repochat.retrieve.files import FileHit, rank_files
from repochat.retrieve.search import SearchHit, search
from .bm25 import WindowBM25, is_test_path
from .cases import FILE_LOCALIZATION, Case, EvalError
from .copies import copy_key, make_stripped_copy, strip_set
from .metrics import Span, gold_rank
from .sources import cache_name, prepare_source, source_key, source_label

REPOCHAT_MODES = ("hybrid", "fts")
CONTROL = "bm25-windows"
FILE_CONTROL = "bm25-files"  # file localization's second control: BM25 over whole source files, tests left out
Log = Callable[[str], None]


def default_work_dir() -> Path:
    return Path(platformdirs.user_cache_dir("repochat-eval"))


@dataclass(frozen=True)
class EvalOptions:
    work: Path = field(default_factory=default_work_dir)
    k: int = 10
    embed: bool = True  # compute vectors; without them there is no hybrid mode to score
    fresh: bool = False  # re-download, re-copy and re-index everything
    index_code: str = ""  # reuse the indexes built by this git revision's indexing code (copies.index_code_fingerprint)

    @property
    def modes(self) -> tuple[str, ...]:
        return (REPOCHAT_MODES if self.embed else ("fts",)) + (CONTROL,)

    def modes_for(self, suite: str) -> tuple[str, ...]:
        return self.modes + ((FILE_CONTROL,) if suite == FILE_LOCALIZATION else ())


@dataclass(frozen=True)
class CaseResult:
    id: str
    suite: str
    origin: str  # cases file
    package: str
    mode: str
    rank: int | None  # 1-based rank of the gold answer within the k retrieved, None if missed
    top: str  # what ranked first, for failure analysis
    seconds: float  # query latency


@dataclass(frozen=True)
class SourceReport:
    package: str
    root: str
    index: str
    files: int
    chunks: int
    index_seconds: float
    embed_seconds: float
    embedded: int


@dataclass
class EvalRun:
    options: EvalOptions
    sources: list[SourceReport] = field(default_factory=list)
    results: list[CaseResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # case id -> why its source could not be prepared


def run_evaluation(cases: list[Case], options: EvalOptions, progress: Progress | None = None,
                   log: Log | None = None) -> EvalRun:
    """Prepare, index and score every source of the cases, in the order they first appear. A source that cannot be
    prepared (an old sdist whose build metadata no longer installs, offline) is logged and its cases are named in
    ``skipped`` instead of ending the run."""
    run = EvalRun(options)
    say = log or (lambda _m: None)
    for group in source_groups(cases):
        try:
            report, results = evaluate_source(group, options, progress, say)
        except EvalError as exc:
            say(f"{source_label(group[0].source)}: skipped {len(group)} case(s): {exc}")
            run.skipped.update({case.id: str(exc) for case in group})
            continue
        run.sources.append(report)
        run.results += results
    return run


def evaluate_source(cases: list[Case], options: EvalOptions, progress: Progress | None,
                    log: Log) -> tuple[SourceReport, list[CaseResult]]:
    indexed = index_source(cases, options, progress, log)
    paths = _indexed_paths(indexed.store)
    controls = {CONTROL: WindowBM25.from_files(indexed.tree, paths)}
    if any(case.suite == FILE_LOCALIZATION for case in cases):
        controls[FILE_CONTROL] = WindowBM25.whole_files(indexed.tree, _source_files(indexed.store, cases))
    log(f"{indexed.report.package}: scoring {len(cases)} cases")
    searcher = _RepochatSearcher(indexed.store, indexed.settings.embedding_model)
    results = [result for case in cases
               for result in _score_case(case, indexed.report.package, options, searcher, controls)]
    return indexed.report, results


@dataclass
class IndexedSource:
    store: IndexStore
    tree: Path  # the stripped copy that was indexed
    settings: Settings
    report: SourceReport


class StrippedCopy(NamedTuple):
    label: str
    root: Path  # the source as downloaded
    tree: Path  # its copy without the cases' doc comments
    folder: Path  # where the copy (and its index) live


def stripped_copy(cases: list[Case], work: Path, fresh: bool, log: Log, index_code: str = "") -> StrippedCopy:
    """The source of ``cases`` downloaded and copied without their doc comments, in a folder of ``work`` named by
    the source, the stripped lines and the embedder (reused by a later run)."""
    source = cases[0].source
    label = source_label(source)
    log(f"{label}: preparing source")
    root = prepare_source(source, work, fresh)
    strips = strip_set(cases)
    model = load_settings(root).embedding_model
    folder = work / cache_name(source) / f"copy-{copy_key(source_key(source), strips, model, index_code)}"
    return StrippedCopy(label, root, make_stripped_copy(root, strips, folder, fresh), folder)


def index_source(cases: list[Case], options: EvalOptions, progress: Progress | None, log: Log) -> IndexedSource:
    """The source of ``cases`` (all from one source) downloaded, stripped of their doc comments, indexed and
    embedded; each step reuses what an earlier run left in ``options.work``."""
    label, root, tree, folder = stripped_copy(cases, options.work, options.fresh, log, options.index_code)
    settings = load_settings(tree, {"index_dir": str(folder / "index")})
    log(f"{label}: indexing {tree}")
    started = time.perf_counter()
    summary = update_index(tree, settings, progress)
    indexed = time.perf_counter()
    store = IndexStore.open(settings.index_path(tree))
    embedded = embed_pending(store, settings, progress) if options.embed else 0
    report = SourceReport(package=label, root=str(root), index=str(folder), files=summary.files,
                          chunks=summary.chunks, index_seconds=round(indexed - started, 2),
                          embed_seconds=round(time.perf_counter() - indexed, 2), embedded=embedded)
    return IndexedSource(store, tree, settings, report)


def source_groups(cases: list[Case]) -> list[list[Case]]:
    """Cases grouped by source, in the order the sources first appear."""
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(source_key(case.source), []).append(case)
    return list(groups.values())


class _RepochatSearcher:
    """repochat's search over one store; the first query warms caches (embedder, tables) untimed."""

    def __init__(self, store: IndexStore, embedding_model: str) -> None:
        self._store = store
        self._model = embedding_model
        self._warm = False

    def __call__(self, query: str, k: int, mode: str) -> tuple[list[Span], list[str], float]:
        """The k best chunks."""
        return self._timed(search, query, k, mode)

    def files(self, query: str, k: int, mode: str) -> tuple[list[Span], list[str], float]:
        """The k best files (rank_files), each as the span of its best chunk."""
        return self._timed(rank_files, query, k, mode)

    def _timed(self, rank: Callable[..., list[SearchHit] | list[FileHit]], query: str, k: int,
               mode: str) -> tuple[list[Span], list[str], float]:
        """``rank``'s k best hits as spans and names, and the seconds it took (after the warm-up)."""
        self._warm_up(mode)
        started = time.perf_counter()
        hits = rank(self._store, query, k=k, mode=mode, embedding_model=self._model)
        seconds = time.perf_counter() - started
        return ([(h.path, h.start_line, h.end_line) for h in hits],
                [f"{h.location()} {h.symbol}".strip() for h in hits], seconds)

    def _warm_up(self, mode: str) -> None:
        if not self._warm:
            search(self._store, "warm up", k=1, mode=mode, embedding_model=self._model)
            self._warm = True


# BM25 windows ranked for file localization: enough that k distinct files are among them.
CONTROL_WINDOWS = 50


def _score_case(case: Case, label: str, options: EvalOptions, searcher: _RepochatSearcher,
                controls: dict[str, WindowBM25]) -> list[CaseResult]:
    localizing = case.suite == FILE_LOCALIZATION
    results = []
    for mode in options.modes_for(case.suite):
        if mode in controls:
            started = time.perf_counter()
            windows = controls[mode].search(case.query, max(CONTROL_WINDOWS, options.k) if localizing else options.k)
            seconds = time.perf_counter() - started
            ranking = [(w.path, w.start_line, w.end_line) for w in windows]
            names = [f"{w.path}:{w.start_line}-{w.end_line}" for w in windows]
        elif localizing:
            ranking, names, seconds = searcher.files(case.query, options.k, mode)
        else:
            ranking, names, seconds = searcher(case.query, options.k, mode)
        rank = gold_rank(case, ranking)
        results.append(CaseResult(id=case.id, suite=case.suite, origin=case.origin, package=label, mode=mode,
                                  rank=rank if rank is not None and rank <= options.k else None,
                                  top=names[0] if names else "", seconds=round(seconds, 5)))
    return results


def _indexed_paths(store: IndexStore) -> list[str]:
    """The files repochat indexed: the control sees exactly the same text."""
    return sorted(path for path, row in store.file_rows().items() if row["status"] == "indexed")


def _source_files(store: IndexStore, cases: list[Case]) -> list[str]:
    """The whole-file control's documents: indexed files in the cases' languages (all of them when the cases do not
    say), tests left out: the baseline a localization ranking has to beat."""
    languages = {case.language for case in cases if case.language}
    return sorted(path for path, row in store.file_rows().items()
                  if row["status"] == "indexed" and (not languages or row["language"] in languages)
                  and not is_test_path(path))
