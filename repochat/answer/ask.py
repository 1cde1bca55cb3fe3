"""Question -> plan -> context -> answer with citations and coverage.

Whole-repository mode puts every readable file into the context in stability order; its KV cache comes from the page
store where it can. Retrieval mode fills a budget with the retrieval module's excerpts instead.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..callbacks import Progress, TextSink
from ..config import Settings
from ..engine.llama import LlamaModel
from ..engine.models import resolve_model
from ..engine.pagestore import PageStore, chain_keys
from ..engine.pieces import PIECE_INDEX, Placement, missing_links, piece_store_identity
from ..engine.planner import Plan, answers_whole, auto_refuses_whole, context_bucket, make_plan, pieces_sound
from ..engine.throughput import describe_seconds, estimate_spans_seconds
from ..engine.reports import Generation, PrefixStats
from ..engine.session import Engine, cache_identity, split_pages
from ..errors import ConfigError, EngineError, RepochatError
from .lookup import lookup_answer
from .pick import Pick, answer_with_pick, pick_for
from .prompt import ExcerptLike, Prompt, Prompter
from .references import Reference, answer_references
from .render import check_citations
from .translate import search_query
from .prefix import Repository, estimated_tokens, load_repository, plan_and_prefix
from ..retrieve.questions import question_kind
from .sources import Trailer, add_sources, candidate_spans

log = logging.getLogger("repochat.answer.ask")
MAX_QUESTION_CHARS = 32_000  # a long pasted issue with its stack trace fits; megabytes of text are a mistake


@dataclass
class AskResult:
    question: str
    answer: str
    citations: list[dict[str, Any]]  # {"path", "start", "end", "valid"}
    coverage: dict[str, Any]
    references: list[dict[str, Any]] = field(default_factory=list)  # {"path", "start", "end", "symbol"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ask(root: Path, question: str, settings: Settings, effort: str = "auto", on_text: TextSink | None = None,
        on_progress: Progress | None = None, engine: Engine | None = None) -> AskResult:
    """Answer ``question`` about the repository at ``root``; streams answer text to ``on_text``."""
    started = time.monotonic()
    if not question.strip():
        raise ConfigError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:  # checked before anything reads it: planning looks up names in it
        raise ConfigError(f"the question is too long: {len(question):,} characters (at most {MAX_QUESTION_CHARS:,})")
    if effort != "high":  # a lookup ("where is X defined", "who calls X") is answered from the index, no model
        answered = lookup_answer(root, question, settings)
        if answered is not None:
            if on_text:
                on_text(answered.answer)
            return answered
    if settings.engine:  # an OpenAI-compatible server runs the model (engine/api.py, answer/remote.py)
        from .remote import ask_remote

        return ask_remote(root, question, settings, effort, on_text, on_progress)
    repo = load_repository(root, settings)
    own_engine = engine is None
    if engine is None:
        engine = Engine(resolve_model(settings, on_progress), settings, on_progress)
    try:
        return _answer(repo, question, settings, effort, engine, on_text, on_progress, started)
    finally:
        if own_engine:
            engine.close()


def _answer(repo: Repository, question: str, settings: Settings, effort: str, engine: Engine,
            on_text: TextSink | None, on_progress: Progress | None, started: float) -> AskResult:
    prompter = Prompter(engine.model, engine.model_path)
    question_tokens = prompter.question(question, cite=not settings.sources)
    plan, prompt, notices = _plan_prompt(repo, question, settings, effort, engine, prompter)
    needed = len(prompt.tokens) + len(question_tokens) + settings.max_answer_tokens
    if needed > plan.context_limit:
        raise ConfigError(f"the question is too long: {needed:,} tokens needed, context limit {plan.context_limit:,}")
    pick = _pick(question, repo, plan, prompt, settings, engine)
    shown_at = show_pick(pick, on_text)
    engine.ensure_context(max(plan.context, context_bucket(needed, plan.context_limit)))
    stats = engine.load_context(prompt.head, prompt.pieces, kv_settings(settings, plan.mode), on_progress)
    stats.notices[:0] = notices
    generation = _generate(question_tokens, prompt, pick, settings, engine, on_text)
    rendered = {f.path: f.text for f in repo.files}
    references = answer_references(generation.text, repo.root, prompt, rendered)
    trailer = _sources(repo, plan, prompt, engine, generation, references, on_text) if settings.sources else None
    answer = generation.text + (trailer.text if trailer else "")
    coverage = _coverage(repo, plan, prompt, len(question_tokens), stats, generation, started, shown_at)
    coverage["sources_tokens"] = trailer.tokens if trailer else 0
    return AskResult(question, answer, check_citations(answer, prompt.shown), coverage,
                     [asdict(r) for r in references])


def kv_settings(settings: Settings, mode: str) -> Settings:
    """The settings a context of ``mode`` is loaded with: a retrieved one as prefix pages unless kv_pieces_retrieval
    (assembled excerpts answered worse than one prefill of the same context: config.py)."""
    if mode == "retrieval" and not settings.kv_pieces_retrieval:
        return dataclasses.replace(settings, kv_pieces=False)
    return settings


def _pick(question: str, repo: Repository, plan: Plan, prompt: Prompt, settings: Settings,
          engine: Engine) -> Pick | None:
    """What the answer to a "which function / which files" question starts with (repochat.answer.pick): the best
    ranked of the excerpts retrieved, or in whole-repository mode of the index's ranking for the question: there the
    default model, given every file of a 19K-token package, named the function asked for 2 times in 10, against 6
    with retrieved excerpts (issue 11's first measurement)."""
    if not settings.pick or question_kind(question) is None:
        return None
    if plan.mode != "whole":
        return pick_for(question, prompt.excerpts)
    shown = set(prompt.paths)
    return pick_for(question, [c for c in _whole_candidates(repo.root, question, settings, engine) if c.path in shown])


def _whole_candidates(root: Path, question: str, settings: Settings, engine: Engine) -> list[ExcerptLike]:
    """The index's ranking for a question asked with the whole repository in the context; none when there is no
    usable index (whole-repository mode does not need one: the answer then starts with the model's words)."""
    try:
        from ..retrieve.excerpts import ranked_candidates

        return list(ranked_candidates(root, settings, search_query(engine, question)))
    except (ImportError, RepochatError) as exc:
        log.warning("no pick from the index for this question: %s", exc)
        return []


def show_pick(pick: Pick | None, on_text: TextSink | None) -> float:
    """Stream the pick's text now, before the context is prefilled, and return when it was ready (0: no pick).
    It comes from the index, not the model: the function or files a "which" question asks for show within a
    second or two, where the model's first token waits for a prefill of a minute or more on 2 cores."""
    if pick is None:
        return 0.0
    if on_text:
        on_text(pick.text)
    return time.monotonic()


def _generate(question_tokens: list[int], prompt: Prompt, pick: Pick | None, settings: Settings, engine: Engine,
              on_text: TextSink | None) -> Generation:
    """The answer: a question asking *which* definition or file starts with the best-ranked candidate shown
    (repochat.answer.pick, already streamed), then the model's words; any other is answered freely."""
    if pick is not None:
        return answer_with_pick(engine, question_tokens, len(prompt.tokens), pick, settings.max_answer_tokens, on_text)
    return engine.generate(question_tokens, len(prompt.tokens), settings.max_answer_tokens, on_text)


def _sources(repo: Repository, plan: Plan, prompt: Prompt, engine: Engine, generation: Generation,
             references: list[Reference], on_text: TextSink | None) -> Trailer | None:
    """The "Sources:" trailer (repochat.answer.sources); the definitions the answer names are its first candidates."""
    spans = candidate_spans(repo.root, prompt, plan.mode == "whole", generation.text, references)
    return add_sources(engine, generation, spans, on_text)


def _coverage(repo: Repository, plan: Plan, prompt: Prompt, question_tokens: int, stats: PrefixStats,
              generation: Generation, started: float, shown_at: float = 0.0) -> dict[str, Any]:
    """What the answer was based on and what it cost: the coverage line of `repochat ask`. ``ttft_s`` is when the
    answer's first words were ready (a pick's, from the index), ``model_ttft_s`` when the model wrote its first
    token."""
    model_first = generation.first_token_at or time.monotonic()
    return {
        "mode": plan.mode,
        "files_in_context": len(prompt.paths) if plan.mode == "whole" else 0,
        "files_appended": prompt.appended,
        "files_retrieved": len(prompt.paths) if plan.mode == "retrieval" else 0,
        "files_left_out": repo.files_left_out(len(prompt.paths)),
        "context_tokens": len(prompt.tokens) + question_tokens + generation.tokens,
        "repo_tokens": plan.repo_tokens,
        "cache": stats.cache,
        "kv_unit": stats.unit,  # what the pages* counts count: prefix pages, or the head and the pieces
        "restored_tokens": stats.restored_tokens + stats.memory_tokens,
        "prefilled_tokens": stats.prefilled_tokens,
        "pages": stats.pages_total,
        "pages_restored": stats.pages_restored + stats.pages_in_memory,
        "pages_saved": stats.pages_saved,
        "question_tokens": question_tokens,
        "answer_tokens": generation.tokens,
        "stopped": generation.stopped,
        "restore_s": round(stats.restore_seconds, 3),
        "prefill_s": round(stats.prefill_seconds, 3),
        "link_tokens": stats.link_tokens,
        "link_s": round(stats.link_seconds, 3),
        "links_restored": stats.links_restored,
        "ttft_s": round((shown_at or model_first) - started, 3),
        "model_ttft_s": round(model_first - started, 3),
        "total_s": round(time.monotonic() - started, 3),
        "notices": stats.notices,
        "plan": plan.reason,
    }


def _plan_prompt(repo: Repository, question: str, settings: Settings, effort: str, engine: Engine,
                 prompter: Prompter) -> tuple[Plan, Prompt, list[str]]:
    """The plan, the cacheable prefix for it (the whole repository, else retrieved excerpts) and notices about it.

    A whole-repository prefill this machine is estimated to need more than interactive_prefill_s for (the pages
    not cached yet) is not started unasked: auto answers from retrieval instead, high says what it will cost."""
    model_path = engine.model_path
    notices: list[str] = []
    if effort == "auto" and not answers_whole(model_path):  # checked first: tokenizing a large repository costs
        estimate = estimated_tokens(repo, prompter)
        refused = auto_refuses_whole(model_path, settings, estimate)
        if refused:
            plan = make_plan(model_path, estimate, settings, effort, whole_refused=refused)
            return plan, _retrieval_prompt(repo.root, question, settings, plan, engine, prompter), notices
    plan, whole = plan_and_prefix(repo, prompter, model_path, settings, effort, remember=True)
    seconds = _cold_prefill_seconds(whole, engine, settings) if whole is not None else None
    if seconds is not None and settings.interactive_prefill_s and seconds > settings.interactive_prefill_s:
        cost = f"prefill of the whole repository would take about {describe_seconds(seconds)} on this machine"
        if effort == "auto":
            plan, whole = make_plan(model_path, plan.repo_tokens, settings, effort, whole_refused=cost), None
            notices.append(f"{cost}: answered from retrieval (--effort high puts it in; later questions reuse it)")
        else:
            notices.append(f"{cost}; later questions reuse it")
        log.warning("%s", notices[-1])  # before the prefill starts, not only in the coverage line after it
    prompt = whole if whole is not None else _retrieval_prompt(repo.root, question, settings, plan, engine, prompter)
    return plan, prompt, notices


def _cold_prefill_seconds(prompt: Prompt, engine: Engine, settings: Settings) -> float | None:
    """Estimated seconds to prefill what of ``prompt`` neither the engine's memory nor the page store holds; None
    if this machine has not measured a prefill of this model yet."""
    spans = engine.prefill_spans(prompt.head, prompt.pieces, settings)
    return estimate_spans_seconds(settings, engine.model_path, spans)


def _retrieval_prompt(root: Path, question: str, settings: Settings, plan: Plan, engine: Engine,
                      prompter: Prompter) -> Prompt:
    """Retrieved excerpts for the question (searched in English: a question in another language is translated)."""
    try:
        from ..retrieve.excerpts import retrieval_excerpts
    except ImportError as exc:
        raise EngineError("the repository does not fit in the context and retrieval is not available") from exc
    excerpts = retrieval_excerpts(root, settings, search_query(engine, question), plan.retrieval_tokens)
    return prompter.excerpts(excerpts, plan.retrieval_tokens + len(prompter.head))


def status_plan(root: Path, settings: Settings) -> dict[str, Any]:
    """The plan and the state of the KV cache for `repochat status`; loads only the model's vocabulary."""
    from .kv_warm import excerpt_cache_state  # it reads the index (LanceDB): not imported by every ask

    repo = load_repository(root, settings)
    model_path = resolve_model(settings)
    vocabulary = LlamaModel(model_path, vocab_only=True)
    try:
        plan, prompt = plan_and_prefix(repo, Prompter(vocabulary, model_path), model_path, settings, "auto")
        excerpts = excerpt_cache_state(repo, settings, Prompter(vocabulary, model_path), model_path, plan, prompt)
    finally:
        vocabulary.close()
    report: dict[str, Any] = {"model": str(model_path), **plan.as_dict(), **excerpts,
                              "kv_disk_bytes": plan.repo_tokens * plan.kv_bytes_per_token}  # all of its KV
    refused = auto_refuses_whole(model_path, settings, plan.repo_tokens) if plan.mode == "whole" else ""
    if refused:  # the whole-repository plan is that of --effort high and of review
        report["ask_auto"] = f"retrieval: {refused}"
    if prompt is not None:
        report.update(_kv_cache_state(model_path, settings, prompt), files_appended=prompt.appended)
    return report


def _kv_cache_state(model_path: Path, settings: Settings, prompt: Prompt) -> dict[str, Any]:
    """How much of the whole-repository prefix's KV is on disk (pieces, or the prefix pages' longest cached run),
    and the (tokens, start) spans an ask would prefill now (``prefill_spans``, priced by `repochat status`)."""
    identity = cache_identity(model_path, settings)
    if pieces_sound(model_path, settings):
        store = PageStore(Path(settings.cache_dir), piece_store_identity(identity), settings.kv_cache_size)
        placement = Placement.of(identity, prompt.head, prompt.pieces)
        present = [store.exists(PIECE_INDEX, key) for key in placement.keys]
        missing = [unit for unit, found in enumerate(present) if not found]
        links = missing_links(placement, store, 0, settings.piece_link_tokens)
        spans = placement.prefill_spans(present, links, settings.piece_link_tokens)
        cached_tokens = len(prompt.tokens) - sum(placement.length(unit) for unit in missing)
        counts = {"kv_unit": "piece", "pages": len(present), "pages_cached": len(present) - len(missing)}
    else:
        pages = split_pages(prompt.tokens, settings.page_tokens)
        store = PageStore(Path(settings.cache_dir), identity, settings.kv_cache_size)
        cached = store.present_run(chain_keys(identity, pages))
        cached_tokens = sum(len(page) for page in pages[:cached])
        spans = [(len(prompt.tokens) - cached_tokens, cached_tokens)] if cached < len(pages) else []
        counts = {"kv_unit": "page", "pages": len(pages), "pages_cached": cached}
    state = "hit" if cached_tokens == len(prompt.tokens) else ("partial" if cached_tokens else "miss")
    return {**counts, "tokens_cached": cached_tokens, "cache": state, "prefill_spans": spans}
