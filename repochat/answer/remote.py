"""`repochat ask` on a remote engine (engine/remote.py): the same question, context and citations as the local
path, sent as text to an OpenAI-compatible server.

The server applies its model's chat template and keeps its own KV cache, so what matters here is the order of the
user message: the repository first, laid out as the local whole-repository mode lays it out (stability order, files
changed since appended after the remembered layout: repochat.answer.prefix_layout), then the question. The repository part is
byte-identical from one question to the next, so the server's prefix cache skips it and prefills only the question.
The plan takes the server's context length (or engine_context) and its own token counts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..callbacks import Progress, TextSink
from ..config import Settings
from ..engine.api import ChatEngine
from ..engine.remote import TEMPLATE_TOKENS, Completion, ContextTooLong, RemoteEngine
from ..errors import EngineError
from .prefix_layout import Layout, LayoutMemory, arrange
from .prompt import APPENDED_HEADING, Prompt, question_text as prompt_question
from .references import answer_references
from .render import CITATION_RULES, check_citations, render_block
from .prefix import CLEARLY_TOO_BIG, Repository, load_repository
from .sources import candidate_spans, header
from ..tokens import count_tokens_batch, estimate_tokens

log = logging.getLogger("repochat.answer.remote")
# Retrieval mode's context when retrieval_tokens is 0: a server is usually a GPU, where 8K tokens of excerpts
# prefill in well under a second (the local default is sized for 2 CPU cores).
REMOTE_RETRIEVAL_TOKENS = 8192


@dataclass
class RemoteContext:
    prompt: Prompt  # what was shown (paths, lines, excerpts); no tokens: the server tokenizes
    text: str  # the repository part of the user message
    mode: str  # "whole" or "retrieval"
    reason: str
    repo_tokens: int  # the whole repository by the server's count (or the estimate, when it was clearly too big)
    prompt_tokens: int  # the whole prompt by the server's count, template included (approximately)


def ask_remote(root: Path, question: str, settings: Settings, effort: str = "auto", on_text: TextSink | None = None,
               on_progress: Progress | None = None, engine: ChatEngine | None = None) -> Any:
    """Answer ``question`` about the repository at ``root`` on the engine server of ``settings.engine``."""
    from .ask import AskResult

    started = time.monotonic()
    repo = load_repository(root, settings)
    own = engine is None
    engine = engine or RemoteEngine(settings.engine, settings)
    try:
        question_text = prompt_question(question, cite=not settings.sources)
        context = _context(repo, question, question_text, settings, effort, engine)
        if on_progress:
            on_progress("prefill", 0, 1)  # the server prefills; nothing to count here until it answers
        messages = [{"role": "system", "content": CITATION_RULES}, {"role": "user", "content": context.text + question_text}]
        completion = engine.stream(messages, settings.max_answer_tokens, on_text)
        if on_progress:
            on_progress("prefill", 1, 1)
        rendered = {f.path: f.text for f in repo.files}
        references = answer_references(completion.text, repo.root, context.prompt, rendered)
        trailer = _sources(repo.root, context, completion, references, on_text) if settings.sources else ""
        answer = completion.text + trailer
        coverage = _coverage(repo, context, engine, completion, started)
        return AskResult(question, answer, check_citations(answer, context.prompt.shown), coverage,
                         [asdict(r) for r in references])
    finally:
        if own:
            engine.close()


def _context(repo: Repository, question: str, question_text: str, settings: Settings, effort: str,
             engine: ChatEngine) -> RemoteContext:
    """The whole repository where it fits in the server's
    context beside the question and the answer, else retrieved excerpts within what is left."""
    limit = engine.context_limit()
    fixed = engine.count_tokens(CITATION_RULES) + engine.count_tokens(question_text) + 2 * TEMPLATE_TOKENS
    room = limit - fixed - settings.max_answer_tokens
    if room <= 0:
        raise ContextTooLong(f"the question is too long: {fixed + settings.max_answer_tokens:,} tokens needed with "
                             f"the answer, the engine server's context is {limit:,}")
    layout = _layout(repo, settings)
    estimate = sum(count_tokens_batch([f.text for f in layout.entries]))
    if effort != "low" and estimate <= room * CLEARLY_TOO_BIG:
        prompt, text = whole_text(layout)
        tokens = engine.count_tokens(text)
        if tokens <= room:
            _remember(repo, settings, layout)
            why = f"whole repository ({tokens:,} tokens) fits the engine server's context ({limit:,})"
            return RemoteContext(prompt, text, "whole", why, tokens, fixed + tokens)
        estimate = tokens
    budget = min(room, settings.retrieval_tokens or REMOTE_RETRIEVAL_TOKENS)
    prompt, text = _retrieval_text(repo.root, question, settings, budget, engine)
    why = "--effort low" if effort == "low" else f"repository (~{estimate:,} tokens) exceeds the context ({limit:,})"
    return RemoteContext(prompt, text, "retrieval", f"retrieval: {why}", estimate,
                         fixed + engine.count_tokens(text))


def _layout(repo: Repository, settings: Settings) -> Layout:
    memory = LayoutMemory(Path(settings.cache_dir), repo.root, scope=_scope(settings))
    return arrange(repo.files, memory.load(), settings.max_stale_share, estimate_tokens)


def _remember(repo: Repository, settings: Settings, layout: Layout) -> None:
    if layout.changed:
        LayoutMemory(Path(settings.cache_dir), repo.root, scope=_scope(settings)).save(layout)


def _scope(settings: Settings) -> str:
    """The remembered layout belongs to one server: another server's cache holds another prefix."""
    return f"engine={settings.engine};max_file_size={settings.max_file_size}"


def whole_text(layout: Layout) -> tuple[Prompt, str]:
    """Every file of the layout in order, then those appended since it was laid out, under the heading the local
    prompt uses; only the last copy of a file counts as shown (prompt.Prompter.whole, as text)."""
    entries = layout.entries
    prompt = Prompt([], appended=len({f.path for f in layout.appended}))
    prompt.show_files(entries)
    parts: list[str] = []
    for index, rendered in enumerate(entries):
        if index == layout.laid_out:
            parts.append(APPENDED_HEADING)
        parts.append(rendered.text)
    return prompt, "".join(parts)


def _retrieval_text(root: Path, question: str, settings: Settings, budget: int,
                    engine: ChatEngine) -> tuple[Prompt, str]:
    """Retrieved excerpts in ranking order while they fit ``budget`` by the server's count (the retrieval module's
    estimate picks them; the server's tokenizer has the last word)."""
    try:
        from ..retrieve.excerpts import retrieval_excerpts
    except ImportError as exc:
        raise EngineError("the repository does not fit in the context and retrieval is not available") from exc
    chosen = [(excerpt, render_block(excerpt.path, excerpt.text, excerpt.start_line))
              for excerpt in retrieval_excerpts(root, settings, question, budget)]
    while chosen and engine.count_tokens("".join(block for _e, block in chosen)) > budget:
        chosen.pop()  # the estimate was low: the least relevant go
    prompt = Prompt([])
    for excerpt, _block in chosen:
        prompt.show_excerpt(excerpt)
    return prompt, "".join(block for _e, block in chosen)


def _sources(root: Path, context: RemoteContext, completion: Completion, references: list[Any],
             on_text: TextSink | None) -> str:
    """The "Sources:" trailer with the best-ranked span that was shown (repochat.answer.sources ranks them; locally the
    model may add one or two more, which a chat API cannot continue an answer to do)."""
    spans = candidate_spans(root, context.prompt, context.mode == "whole", completion.text, references)
    if not spans or completion.stopped == "length":
        return ""
    trailer = f"{header(completion.text)} {spans[0].text}"
    if on_text:
        on_text(trailer)
    return trailer


def _coverage(repo: Repository, context: RemoteContext, engine: ChatEngine, completion: Completion,
              started: float) -> dict[str, Any]:
    """The coverage line's keys as the local ask reports them, with what the server said it reused (prompt tokens
    by the server's usage where it reports it, else by its tokenizer)."""
    prompt, mode = context.prompt, context.mode
    prompt_tokens = completion.prompt_tokens or context.prompt_tokens
    cached = completion.cached_tokens
    cache = "unreported" if cached is None else ("hit" if cached and cached >= prompt_tokens - 64 else
                                                 "partial" if cached else "miss")
    coverage: dict[str, Any] = {
        "mode": mode,
        "engine": engine.url,
        "server": engine.server,
        "model": engine.model,
        "files_in_context": len(prompt.paths) if mode == "whole" else 0,
        "files_appended": prompt.appended,
        "files_retrieved": len(prompt.paths) if mode == "retrieval" else 0,
        "files_left_out": repo.files_left_out(len(prompt.paths)),
        "context_tokens": prompt_tokens + completion.tokens,
        "repo_tokens": context.repo_tokens,
        "cache": cache,
        "server_cached_tokens": cached,
        "restored_tokens": cached or 0,
        "prefilled_tokens": max(prompt_tokens - (cached or 0), 0) if cached is not None else prompt_tokens,
        "prompt_tokens": prompt_tokens,
        "answer_tokens": completion.tokens,
        "stopped": completion.stopped,
        "ttft_s": round((completion.first_token_at or time.monotonic()) - started, 3),
        "total_s": round(time.monotonic() - started, 3),
        "notices": [],
        "plan": context.reason,
    }
    coverage["model_ttft_s"] = coverage["ttft_s"]  # no pick here: the server's first token is the answer's
    return coverage


def remote_status(root: Path, settings: Settings) -> dict[str, Any]:
    """For `repochat status`: the server, what it is, its context, and the plan an ask would take there (the
    repository's size by the server's tokenizer). What the server holds in its prefix cache it tells per request:
    each ask's coverage reports it."""
    with RemoteEngine(settings.engine, settings) as engine:
        report = engine.describe()
        if not isinstance(report["context_limit"], int):
            return report
        repo = load_repository(root, settings)
        _prompt, text = whole_text(_layout(repo, settings))
        tokens = engine.count_tokens(text)
        room = report["context_limit"] - settings.max_answer_tokens - 4 * TEMPLATE_TOKENS
        return {**report, "repo_tokens": tokens, "mode": "whole" if tokens <= room else "retrieval",
                "server_cache": "reported per ask (coverage: server_cached_tokens)"}
