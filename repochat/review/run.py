"""Review a change before it is committed, with the repository as context.

staged diff -> index updated from the staged blobs -> context (changed regions widened to their definitions,
callers, callees, notes, related map) within a token budget -> the model, constrained by a grammar to a findings
object -> findings on files outside the review dropped -> a ReviewReport (text / JSON / SARIF by review_format).
The review part goes after the whole repository when `ask`'s cached KV pages make that cheap (review_layout), else
on its own.

A missing model or index does not raise: the report carries a one-line notice and the caller decides (the hook lets
the commit through unless --strict). A bad range or a directory that is not a git work tree raises ReviewError.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ..callbacks import Progress
from ..config import Settings
from ..engine.api import is_remote
from ..engine.llama import LlamaContext
from ..engine.grammar import generate_constrained, preference
from ..engine.models import resolve_model
from ..engine.planner import context_bucket
from ..engine.reports import PrefixStats
from ..engine.session import Engine
from ..errors import EngineError, IndexStoreError, IndexMissing, ModelError
from ..index.indexer import update_index
from ..index.languages import language_for
from ..index.store import IndexStore
from ..retrieve.symbols import find_symbols
from .context import (FileView, ReviewContext, file_view, find_callees, find_callers, misspelling_notes,
                             related_map, tokens_of)
from .diff import STAGED, WORKTREE, Change, FileChange, load_change
from .report import Finding, ReviewReport
from .staged_index import index_change, open_index
from .mode import WHOLE, ModeRequest, ReviewMode, choose_mode
from .remote import remote_findings
from .prompt import (ANSWER_PREFIX, BUGGY_WORDS, CORRECT_WORDS, VERDICT, VERDICT_THRESHOLD,
                            findings_grammar, parse_findings, prompt_text)

PROMPT_TOKENS = 2500  # user-message budget: a short prompt keeps a small model focused and a hook fast
CHANGE_SHARE = 0.6  # at most this share of the budget goes to the changed regions themselves
MAX_OUTPUT_TOKENS = 256
_ANSWER_ROOM = 16  # the verdict words and the answer's fixed start
_CONTEXT_STEP = 1024


@dataclass
class _Selection:
    views: list[FileView]
    changes: list[FileChange]
    not_reviewed: dict[str, str]


def target_label(target: str) -> str:
    return {STAGED: "staged", WORKTREE: "worktree"}.get(target, target)


def review(root: Path, settings: Settings, target: str = STAGED, engine: Engine | None = None,
           on_progress: Progress | None = None, effort: str = "auto") -> ReviewReport:
    """Review ``target`` (STAGED, WORKTREE or a revision range) of the repository at ``root``.

    ``engine`` is an already loaded Engine to reuse (tests, the MCP server); without it the configured model is
    loaded for this review and closed after it. ``effort``: low = the change and its neighbours only; auto = after
    the whole repository's cached KV pages when few tokens need prefilling (review_whole_max_prefill); high = the
    whole repository whenever it fits."""
    started = time.monotonic()
    change = load_change(root, target)
    report = ReviewReport(target=target_label(target))
    try:
        writes = target in (STAGED, WORKTREE)
        store = _open_or_build_index(root, settings, writes, report, on_progress)
        if writes:
            index_change(store, change, settings)  # the symbols the review looks up describe what is committed
    except IndexStoreError as exc:
        report.notice = f"index unavailable: {exc}"
        return _finish(report, started)
    selection = select_files(store, change, settings)
    report.not_reviewed = selection.not_reviewed
    report.reviewed = [view.path for view in selection.views]
    if selection.views:
        context = build_context(store, selection)
        request = ModeRequest(root, change, prompt_text(context, PROMPT_TOKENS), effort,
                                _indexed_tokens(store), MAX_OUTPUT_TOKENS + _ANSWER_ROOM)
        _run_model(report, context, request, settings, engine, on_progress)
    return _finish(report, started)


def _open_or_build_index(root: Path, settings: Settings, for_writing: bool, report: ReviewReport,
                         on_progress: Progress | None) -> IndexStore:
    """The index; a repository without one gets one first (full-text only: seconds for a small repository), so
    the hook reviews from the very first commit instead of skipping until someone runs `repochat index`."""
    try:
        return open_index(root, settings, for_writing)
    except IndexMissing:
        pass
    summary = update_index(root, dataclasses.replace(settings, embeddings=False), on_progress)
    report.notes.append(f"no index yet: built one ({summary.files} files in {summary.seconds:.1f}s; "
                        f"`repochat index` adds vectors for better search)")
    return open_index(root, settings, for_writing)


def _indexed_tokens(store: IndexStore) -> int:
    return sum(int(tokens or 0) for tokens in store.column("files", "tokens"))


def _finish(report: ReviewReport, started: float) -> ReviewReport:
    report.seconds = round(time.monotonic() - started, 2)
    return report


# --- which files --------------------------------------------------------------------------------------------------
def select_files(store: IndexStore, change: Change, settings: Settings) -> _Selection:
    """Reviewable files, most important first, within max_diff_lines and the change's share of the budget."""
    skip = pathspec.PathSpec.from_lines("gitignore", settings.review_skip)
    not_reviewed: dict[str, str] = {}
    candidates: list[tuple[FileChange, FileView]] = []
    for file in change.files:
        reason = "skipped by review_skip" if skip.match_file(file.path) else file.skip_reason
        if not reason and not file.hunks:
            reason = "no content change"
        if reason:
            not_reviewed[file.path] = reason
        else:
            candidates.append((file, file_view(file)))
    candidates.sort(key=lambda pair: _importance(store, *pair), reverse=True)
    kept: list[tuple[FileChange, FileView]] = []
    lines_left, tokens_left = settings.max_diff_lines, int(PROMPT_TOKENS * CHANGE_SHARE)
    for file, view in candidates:
        cost = tokens_of(view.text)
        if kept and (file.changed_lines > lines_left or cost > tokens_left):
            not_reviewed[file.path] = "diff too large: less important files left out"
            continue
        if not kept and cost > tokens_left:  # the most important file is reviewed even if only in part
            view = file_view(file, max_shown=max(20, len(view.shown_lines) * tokens_left // cost))
            cost = tokens_of(view.text)
        kept.append((file, view))
        lines_left -= file.changed_lines
        tokens_left -= cost
    return _Selection([v for _, v in kept], [f for f, _ in kept], not_reviewed)


def _importance(store: IndexStore, file: FileChange, view: FileView) -> tuple[int, int, int]:
    """Code before other text, then how much of the repository refers to what changed, then the size of the change."""
    references = sum(len(find_symbols(store, name, role="reference", limit=1000)) for name in view.touched)
    return int(language_for(file.path) is not None), references, file.changed_lines


# --- context ------------------------------------------------------------------------------------------------------
def build_context(store: IndexStore, selection: _Selection) -> ReviewContext:
    context = ReviewContext(files=selection.views, not_reviewed=selection.not_reviewed)
    context.callers = find_callers(store, selection.views)
    context.callees = find_callees(store, selection.changes, selection.views)
    shown = "\n".join(e.text for e in context.callers + context.callees)
    for file in selection.changes:
        context.notes.extend(misspelling_notes(store, file, shown))
    context.related = related_map(store, [v.path for v in selection.views])
    return context


# --- the model ----------------------------------------------------------------------------------------------------
def _run_model(report: ReviewReport, context: ReviewContext, request: ModeRequest, settings: Settings,
               engine: Engine | None, on_progress: Progress | None) -> None:
    """Findings from the model into ``report``; a model that cannot be loaded or fails becomes report.notice."""
    own = engine is None
    try:
        if is_remote(settings):  # a server: the review prompt as text, its output constrained there
            findings, report.stats = remote_findings(context, request.review_text, settings, MAX_OUTPUT_TOKENS)
            report.findings, report.dropped = _keep_reviewed(findings, context)
            return
        if engine is None:
            engine = Engine(resolve_model(settings, on_progress), settings, on_progress)
        layout = choose_mode(engine, request, settings)
        _generate(report, context, engine, layout, settings, on_progress)
    except (ModelError, EngineError) as exc:
        report.notice = f"model unavailable: {exc}"
    finally:
        if own and engine is not None:
            engine.close()


def _generate(report: ReviewReport, context: ReviewContext, engine: Engine, layout: ReviewMode, settings: Settings,
              on_progress: Progress | None) -> None:
    """Put the layout's prefix in the context (restored where cached), decode the review part, ask for the verdict;
    generate findings only when the verdict says buggy."""
    began = time.monotonic()
    llama_context, prefix = _load_prefix(engine, layout, settings, on_progress)
    start = layout.prefix_tokens
    end = start + len(layout.suffix)
    suffix_seconds = 0.0
    try:
        suffix_began = time.monotonic()
        llama_context.decode(layout.suffix, start)
        suffix_seconds = time.monotonic() - suffix_began
        margin = preference(llama_context, engine.model.tokenize(VERDICT), end,
                            _first_tokens(engine, BUGGY_WORDS), _first_tokens(engine, CORRECT_WORDS))
        output = None
        if margin > VERDICT_THRESHOLD:
            output = generate_constrained(llama_context, [], findings_grammar(context.locations(), at_least_one=True),
                                          MAX_OUTPUT_TOKENS, start=end, answer_prefix=ANSWER_PREFIX)
    finally:
        _release(engine, layout)
    findings = parse_findings(output.text) if output else []
    report.findings, report.dropped = _keep_reviewed(findings, context)
    report.stats = {"model": engine.model_path.name, **_layout_stats(layout, prefix, suffix_seconds),
                    "prompt_tokens": end, "verdict_margin": round(margin, 2),
                    "output_tokens": output.tokens if output else 0, "stopped": output.stopped if output else "verdict",
                    "model_seconds": round(time.monotonic() - began, 2), "callers": len(context.callers),
                    "callees": len(context.callees), "notes": context.notes}


def _load_prefix(engine: Engine, layout: ReviewMode, settings: Settings,
                 on_progress: Progress | None) -> tuple[LlamaContext, PrefixStats]:
    """A context big enough for the whole review, holding the layout's prefix (none in retrieval mode)."""
    needed = layout.prefix_tokens + len(layout.suffix) + MAX_OUTPUT_TOKENS + _ANSWER_ROOM
    if layout.mode == WHOLE:
        size = context_bucket(needed, layout.context_limit)
    else:
        engine.close_context()  # the retrieval prompt shares nothing with a cached repository prefix
        size = -(-needed // _CONTEXT_STEP) * _CONTEXT_STEP
    llama_context = engine.ensure_context(size)
    if layout.mode != WHOLE:
        return llama_context, PrefixStats()
    return llama_context, engine.load_context(layout.head, layout.pieces, settings, on_progress)


def _release(engine: Engine, layout: ReviewMode) -> None:
    """Whole mode: drop the review part and keep the repository's pages for the next ask or review in this process.
    Retrieval mode: nothing worth keeping."""
    if layout.mode == WHOLE:
        engine.drop_after(layout.prefix_tokens)
    else:
        engine.close_context()


def _layout_stats(layout: ReviewMode, prefix: PrefixStats, suffix_seconds: float) -> dict[str, object]:
    """Which mode, and what the context cost: tokens restored (memory or disk) against tokens prefilled."""
    return {"mode": layout.mode, "mode_reason": layout.reason, "repository_tokens": layout.prefix_tokens,
            "restored_tokens": prefix.restored_tokens + prefix.memory_tokens,
            "prefilled_tokens": prefix.prefilled_tokens + len(layout.suffix),
            "pages": prefix.pages_total, "pages_restored": prefix.pages_restored + prefix.pages_in_memory,
            "restore_seconds": round(prefix.restore_seconds, 2),
            "prefill_seconds": round(prefix.prefill_seconds + suffix_seconds, 2), "kv_notices": prefix.notices}


def _first_tokens(engine: Engine, words: tuple[str, ...]) -> list[int]:
    return [engine.model.tokenize(word)[0] for word in words]


def _keep_reviewed(findings: list[Finding], context: ReviewContext) -> tuple[list[Finding], int]:
    """Findings on a reviewed file and a line that was shown; the rest are dropped (and counted)."""
    shown = {path: set(lines) for path, lines in context.locations().items()}
    kept = [f for f in findings if f.line in shown.get(f.path, ())]
    unique = list(dict.fromkeys(kept))
    return unique, len(findings) - len(kept)
