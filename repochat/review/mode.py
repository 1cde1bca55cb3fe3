"""Where a review's prompt goes: after the whole-repository prefix that `repochat ask` caches, or on its own.

Whole-repository mode: the context starts with the files `ask` puts in (same chat head, same files in the same
order), except that the reviewed files carry the content under review (the staged blobs, or the range's last
commit). With KV pieces (engine/pieces.py) every file `ask` cached is restored and only the reviewed files, plus the
review part, are prefilled; with prefix pages the reviewed files are appended after the remembered layout
(repochat.answer.prefix_layout) so that the pages before them stay valid. The review part (instructions, the change, callers and
callees, the notes) follows the repository as the end of the user turn.

Retrieval mode: the short prompt of review_prompt on its own (review instructions as the system turn).

A pre-commit hook has to be quick, so whole-repository mode is taken only when the plan puts the repository in the
context and at most ``review_whole_max_prefill`` tokens would have to be prefilled; --effort high drops that cap,
--effort low never takes whole-repository mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..engine.planner import make_plan
from ..engine.session import Engine
from ..errors import ConfigError, RepositoryError
from ..answer.prompt import Prompter
from ..answer.prefix import CLEARLY_TOO_BIG, load_repository, plan_and_prefix
from .diff import Change, side_contents
from .prompt import SYSTEM

EFFORTS = ("low", "auto", "high")
WHOLE, RETRIEVAL = "whole", "retrieval"
# The repository's files end the user turn's first part; the review's own instructions open the second.
REVIEW_HEADING = "## Review of a change to the repository above\n"


@dataclass
class ReviewMode:
    mode: str  # WHOLE or RETRIEVAL
    head: list[int]  # the cacheable repository prefix: the template head ...
    pieces: list[list[int]]  # ... and one piece per file ([] in retrieval mode)
    suffix: list[int]  # the review part, decoded after the prefix, up to the assistant header
    reason: str  # why this mode
    context_limit: int = 0  # the plan's largest context (0: no plan was needed)
    reusable_tokens: int = 0  # prefix tokens in memory or on disk (not to be prefilled)

    @property
    def prefix_tokens(self) -> int:
        return len(self.head) + sum(len(piece) for piece in self.pieces)

    @property
    def to_prefill(self) -> int:
        return self.prefix_tokens - self.reusable_tokens + len(self.suffix)


@dataclass
class ModeRequest:
    root: Path
    change: Change
    review_text: str  # the review part (review.prompt.prompt_text)
    effort: str
    indexed_tokens: int  # the index's token count of the repository: a cheap early "too big"
    output_tokens: int  # room for the verdict and the findings after the prompt


def whole_refusal(to_prefill: int, cap: int, effort: str) -> str:
    """Why a whole-repository review that fits in the plan is still not taken ('' = take it)."""
    if effort == "high" or to_prefill <= cap:
        return ""
    return (f"whole repository would prefill {to_prefill:,} tokens (review_whole_max_prefill {cap:,}): "
            "retrieval review instead")


def choose_mode(engine: Engine, request: ModeRequest, settings: Settings) -> ReviewMode:
    """Whole-repository mode when the effort, the plan and the prefill cap allow it; else the retrieval prompt."""
    if request.effort not in EFFORTS:
        raise ConfigError(f"unknown effort {request.effort!r} (use {', '.join(EFFORTS)})")
    retrieval = retrieval_mode(engine, request.review_text)
    if request.effort == "low":
        retrieval.reason = "--effort low: the change and its neighbours only"
        return retrieval
    whole, reason = whole_mode(engine, request, settings)
    if whole is not None:
        reason = whole_refusal(whole.to_prefill, settings.review_whole_max_prefill, request.effort)
    if whole is None or reason:
        retrieval.reason = reason
        return retrieval
    return whole


def retrieval_mode(engine: Engine, review_text: str) -> ReviewMode:
    prompter = Prompter(engine.model, engine.model_path, system=SYSTEM)
    tokens = prompter.head + prompter.content(review_text) + prompter.tail
    return ReviewMode(RETRIEVAL, [], [], tokens, reason="")


def whole_mode(engine: Engine, request: ModeRequest, settings: Settings) -> tuple[ReviewMode | None, str]:
    """The whole-repository layout, or None and why the plan does not allow one."""
    prompter = Prompter(engine.model, engine.model_path)  # ask's system turn: the head must be the one ask cached
    suffix = prompter.content(f"{REVIEW_HEADING}{SYSTEM}\n{request.review_text}") + prompter.tail
    extra = len(suffix) + request.output_tokens
    quick = make_plan(engine.model_path, request.indexed_tokens + extra, settings, request.effort)
    if quick.mode != WHOLE and request.indexed_tokens + extra > quick.context_limit * CLEARLY_TOO_BIG:
        return None, quick.reason  # decided from the index alone: no need to read the repository
    try:
        repo = load_repository(request.root, settings, side_contents(request.root, request.change.new_side),
                               rev=_history_rev(request.change))
    except RepositoryError as exc:
        return None, str(exc)
    plan, prompt = plan_and_prefix(repo, prompter, engine.model_path, settings, request.effort, extra)
    if prompt is None:
        return None, plan.reason
    reason = (f"repository ({len(prompt.tokens):,} tokens) and review ({len(suffix):,}) fit in "
              f"{plan.context_limit:,} tokens of context")
    to_prefill = sum(tokens for tokens, _start in engine.prefill_spans(prompt.head, prompt.pieces, settings))
    return ReviewMode(WHOLE, prompt.head, prompt.pieces, suffix, reason, plan.context_limit,
                        len(prompt.tokens) - to_prefill), ""


def _history_rev(change: Change) -> str:
    """The commit whose history orders the files: the reviewed commit, else HEAD (staged and work-tree reviews)."""
    return change.new_side if change.new_side not in ("", ":") else "HEAD"
