"""Generation constrained by a llama.cpp grammar (GBNF), so structured output always parses.

Built on the ``LlamaContext`` / ``LlamaModel`` / ``GrammarMask`` seam (engine/llama.py): the context decodes and
hands back logits, and llama.cpp's grammar sampler masks every token the grammar does not allow at this point. Sampling is greedy (temperature 0): a review must be repeatable.

Applying the grammar to the whole vocabulary (150K tokens for Qwen) on every step is the slow part, so the best few
candidates are tried first and the full vocabulary only when none of them is allowed.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import EngineError
from .llama import SEQ_MAIN, TOKEN_DATA, GrammarMask, LlamaContext, LlamaModel

_FIRST_CANDIDATES = 40  # top logits checked against the grammar before falling back to the whole vocabulary


@dataclass
class ConstrainedOutput:
    text: str
    tokens: int
    stopped: str  # "end" (the grammar completed and the model stopped), "length" or "context"


def gbnf_literal(text: str) -> str:
    """``text`` as a double-quoted GBNF literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


class GrammarSampler:
    """Greedy choice among the tokens a GBNF grammar allows next."""

    def __init__(self, model: LlamaModel, grammar: str, root: str = "root") -> None:
        self._mask = GrammarMask(model, grammar, root)
        self._full = np.zeros(model.n_vocab, dtype=TOKEN_DATA)
        self._full["id"] = np.arange(model.n_vocab, dtype=np.int32)

    def choose(self, logits: np.ndarray) -> int:
        """The highest-logit token the grammar allows (an end-of-generation token once the grammar is complete)."""
        top = np.argpartition(logits, -_FIRST_CANDIDATES)[-_FIRST_CANDIDATES:]
        candidates = np.zeros(len(top), dtype=TOKEN_DATA)
        candidates["id"], candidates["logit"] = top, logits[top]
        token = self._best_allowed(candidates)
        if token is None:
            self._full["logit"] = logits
            token = self._best_allowed(self._full)
        if token is None:
            raise EngineError("the output grammar allows no token here")
        return token

    def _best_allowed(self, candidates: np.ndarray) -> int | None:
        self._mask.apply(candidates)
        allowed = np.isfinite(candidates["logit"])
        if not allowed.any():
            return None
        return int(candidates["id"][np.argmax(np.where(allowed, candidates["logit"], -np.inf))])

    def accept(self, token: int) -> None:
        self._mask.accept(token)

    def close(self) -> None:
        self._mask.close()


def generate_constrained(context: LlamaContext, prompt: list[int], grammar: str, max_tokens: int,
                         start: int = 0, answer_prefix: str = "",
                         on_text: Callable[[str], None] | None = None) -> ConstrainedOutput:
    """Decode ``prompt`` at ``start`` and generate at most ``max_tokens`` tokens that follow ``grammar``.

    ``answer_prefix`` is the start of the answer, fixed in advance (it must fit the grammar): it is decoded with the
    prompt in one batch instead of token by token, and is part of the returned text. ``on_text`` receives the
    generated text as it is sampled (not the prefix)."""
    model = context.model
    prefix = model.tokenize(answer_prefix) if answer_prefix else []
    if start + len(prompt) + len(prefix) >= context.n_ctx:
        raise EngineError(f"the prompt does not fit: {start + len(prompt):,} tokens, context {context.n_ctx:,}")
    if not prompt and not prefix:
        raise EngineError("nothing to decode before generating")
    sampler = GrammarSampler(model, grammar)
    try:
        for token in prefix:
            sampler.accept(token)
        context.decode(prompt + prefix, start, logits_last=True)
        output = _sample(context, sampler, start + len(prompt) + len(prefix), max_tokens, on_text)
    finally:
        sampler.close()
    output.text = answer_prefix + output.text
    return output


def preference(context: LlamaContext, continuation: list[int], start: int, for_tokens: list[int],
               against_tokens: list[int]) -> float:
    """How much more the model wants a token of ``for_tokens`` than one of ``against_tokens`` after decoding
    ``continuation`` at ``start`` (max logit difference). The continuation is removed again afterwards, so the
    context holds what it held before."""
    context.decode(continuation, start, logits_last=True)
    try:
        logits = context.last_logits()
        return float(np.max(logits[for_tokens]) - np.max(logits[against_tokens]))
    finally:
        context.seq_remove(SEQ_MAIN, start, -1)


def _sample(context: LlamaContext, sampler: GrammarSampler, position: int, max_tokens: int,
            on_text: Callable[[str], None] | None = None) -> ConstrainedOutput:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    stopped, generated = "length", 0
    while generated < max_tokens:
        token = sampler.choose(context.last_logits())
        if context.model.is_end(token):
            stopped = "end"
            break
        sampler.accept(token)
        pieces.append(decoder.decode(context.model.piece(token)))
        if on_text and pieces[-1]:
            on_text(pieces[-1])
        generated += 1
        if position + 1 >= context.n_ctx:
            stopped = "context"
            break
        context.decode([token], position, logits_last=True)
        position += 1
    pieces.append(decoder.decode(b"", final=True))
    if on_text and pieces[-1]:
        on_text(pieces[-1])
    return ConstrainedOutput("".join(pieces), generated, stopped)
