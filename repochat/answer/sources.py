"""A "Sources:" trailer after the answer: one to three ``path:start-end`` citations, each a span that was in the
context (a grammar allows nothing else), so every answer cites something and no citation points at lines the model
was not shown.

A small model rarely cites on its own and sometimes copies the prompt's example path. The trailer continues the
answer's own KV sequence (the end of turn was sampled, never decoded) with "Sources:" and a few tokens, so it costs
one short batch and a handful of decode steps.

Candidates: in whole-repository mode the definitions (chunks) of the files in the context, the whole file for one
without any; in retrieval mode the excerpts shown. The definitions the answer names (repochat.answer.references) come
first, then the spans ranked by the answer's terms they contain. Left to choose among all of them, the default 0.5B
model cited the first file of the context at line 1 (1 of 8 demo questions cited the right lines; the ranking's best
span, 7 of 8: tests/bench/bench_citations.py), so the best span is written as fixed text and the model only decides
whether to add one or two of the next three.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..engine.grammar import gbnf_literal, generate_constrained
from ..engine.reports import Generation
from ..engine.session import Engine
from ..index.parse import parse_file
from .prompt import Prompt
from .references import Reference
from .render import parse_citations
from ..repo.walk import read_text

MAX_SOURCES = 3
SHORTLIST = 4  # the best span and the three after it: the model's own picks beyond these were noise (bench)
SEPARATOR = ", "
_TERM = re.compile(r"[A-Za-z_]\w{2,}|\d+(?:\.\d+)?")  # identifiers, words and numbers (0.5, 1000) an answer states
_HEADER = "Sources:"  # the space after it is the grammar's: the model writes " taskq" as one token, not " " then it


@dataclass(frozen=True)
class Span:
    path: str
    start: int
    end: int

    @property
    def text(self) -> str:
        return f"{self.path}:{self.start}-{self.end}"


@dataclass
class Trailer:
    text: str  # as streamed: the header and the citations
    tokens: int  # tokens it added to the context: the header, the best span, the sampled rest


def candidate_spans(root: Path, prompt: Prompt, whole: bool, answer: str, references: Sequence[Reference],
                    limit: int = SHORTLIST) -> list[Span]:
    """The spans the trailer may cite, best first: the definitions the answer names, then the spans by how much of
    the answer they contain. Each one was shown in full and is written so that it parses back as exactly this
    citation (a path with a space would not, and its check would then miss it)."""
    spans = [Span(r.path, r.start, r.end) for r in references]
    spans += _ranked(_context_spans(root, prompt, whole), answer)
    kept = [s for s in dict.fromkeys(spans) if prompt.shown.covers(s.path, s.start, s.end)
            and parse_citations(s.text) == [(s.path, s.start, s.end)]]
    return kept[:limit]


def _context_spans(root: Path, prompt: Prompt, whole: bool) -> list[tuple[Span, str]]:
    """(span, its text) in context order: a file's chunks in whole-repository mode, the excerpts otherwise."""
    found: list[tuple[Span, str]] = []
    for path in prompt.paths:
        text = read_text(root, path) or ""
        chunks = parse_file(path, text).chunks if whole and text else []
        found += [(Span(path, c.start_line, c.end_line), c.text) for c in chunks]
        if not chunks:  # retrieval mode, or a file without definitions: the lines shown
            lines = text.splitlines()
            found += [(Span(path, low, high), "\n".join(lines[low - 1:high]))
                      for low, high in sorted(prompt.shown.ranges[path])]
    return found


def _ranked(spans: list[tuple[Span, str]], answer: str) -> list[Span]:
    """Spans by how much of the answer they contain (its identifiers and numbers, rare ones weighing more: a term
    in every span says nothing), ties in context order. The model alone picks poorly: a 0.5B model cites the first
    file of the context at line 1 whatever the answer says."""
    terms = set(_TERM.findall(answer.lower()))  # "the Worker" in prose, `worker` in code
    if not terms or not spans:
        return [span for span, _text in spans]
    present = [terms & set(_TERM.findall(text.lower())) for _span, text in spans]
    weight = {t: math.log(len(spans) / sum(t in p for p in present)) for t in set().union(*present)}
    scores = [sum(weight[t] for t in p) for p in present]
    order = sorted(range(len(spans)), key=lambda i: -scores[i])
    return [spans[i][0] for i in order]


def sources_grammar(spans: Sequence[Span], most: int = MAX_SOURCES) -> str:
    """GBNF for the best span, then up to ``most`` - 1 of the others, separated by ", ". Grouped by path, so the
    sampler tracks one alternative per file rather than one per span."""
    tail = ""
    for _ in range(min(most, len(spans)) - 1):
        tail = f"({gbnf_literal(SEPARATOR)} cite {tail})?"
    rules = f'root ::= " " best {tail}\nbest ::= {_alternatives(spans[:1])}\n'
    return rules + (f"cite ::= {_alternatives(spans[1:])}\n" if len(spans) > 1 else "")


def _alternatives(spans: Sequence[Span]) -> str:
    by_path: dict[str, list[str]] = {}
    for span in spans:
        by_path.setdefault(span.path, []).append(gbnf_literal(f"{span.start}-{span.end}"))
    return " | ".join(f"{gbnf_literal(path + ':')} ({' | '.join(lines)})" for path, lines in by_path.items())


def header(answer: str) -> str:
    """A blank line, then "Sources:" (fewer newlines when the answer already ends with some)."""
    newlines = len(answer) - len(answer.rstrip("\n"))
    return "\n" * max(2 - newlines, 0) + _HEADER


def add_sources(engine: Engine, generation: Generation, spans: Sequence[Span],
                on_text: Callable[[str], None] | None = None) -> Trailer | None:
    """Continue the answer's sequence with the header, the best span and up to two more the model picks among the
    next ones; None when there is nothing to cite or no room left in the context."""
    context = engine.context
    if not spans or context is None or generation.stopped == "context":
        return None
    intro, best = header(generation.text), " " + spans[0].text
    intro_tokens = engine.model.tokenize(intro)
    longest = max(len(engine.model.tokenize(span.text)) for span in spans)
    budget = MAX_SOURCES * (longest + 2) + 4  # the longest ones, separators, slack for odd tokenizations
    if generation.end + len(intro_tokens) + budget >= context.n_ctx:
        return None
    if on_text:
        on_text(intro + best)
    # the best span is fixed text, decoded with the header in one batch; only the extras are sampled
    output = generate_constrained(context, intro_tokens, sources_grammar(spans), budget, start=generation.end,
                                  answer_prefix=best, on_text=on_text)
    decoded = len(intro_tokens) + len(engine.model.tokenize(best)) + output.tokens
    return Trailer(intro + _complete(output.text, spans), decoded)


def _complete(text: str, spans: Sequence[Span]) -> str:
    """The citations that were written in full (a trailer cut by its token budget may end in a partial one)."""
    allowed = {span.text for span in spans}
    kept = [part for part in text.strip().split(SEPARATOR) if part in allowed]
    return " " + SEPARATOR.join(kept) if kept else ""
