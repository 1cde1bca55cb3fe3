"""The answer's first words for a question that asks *which* function or *which* files: the best-ranked candidate
in the context, written as code, then the model's own words.

Left free, the default 0.5B model often described code without naming it, or named something it was not shown. Left
to pick among the retrieved definitions under a grammar, it picked worse than the search ranking: on 4 needle
questions whose search top-1 was right it picked 1 of 3 right, 0 of 12 candidates when given twelve (the first
listed, `Parser.fail_unknown_tag`, lost to `TemplateSyntaxError.__init__`). So the index answers and the model
phrases: the answer starts with the top-ranked definition (or file) as fixed text, or with the three top-ranked files
for a "which files" question, and then the model goes on freely to explain. (Left to add up to two of the next files
under a grammar, it named a gold file among the first three in 11 of 20 dev-swelite issues; the ranking's own top
three had one in 12. So no choice is left to the model: the grammar is the fixed text.)
Definitions are ranked by chunk search; files by the file ranking (repochat.retrieve.files), whose best files'
best chunks retrieval puts first in the context for a question about files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from ..callbacks import TextSink
from ..engine.grammar import gbnf_literal, generate_constrained
from ..engine.reports import Generation
from ..engine.session import Engine
from .prompt import ExcerptLike, question_language
from ..retrieve.questions import question_kind

# Index kinds (grammars/*/tags.scm @definition.<kind>) that a "which function" question can be answered with.
NAMED_KINDS = frozenset({"function", "method", "class", "struct", "interface", "trait", "enum", "type", "module"})
MAX_CHOICES = 3  # the most an answer names: a "which files" answer names the three best-ranked
SEPARATOR = ", "


@dataclass(frozen=True)
class Wording:
    """How a pick is written, per language of the question. The name comes first: the model picks token by token,
    and a path first would decide by the file. The connector after it matters: after a bare name the model stopped
    (the pick was its whole answer); after ", which" it went on to say what the code does."""

    definition: str  # with {symbol} and {path}
    file: str  # with {path}
    connector: str  # after a definition
    file_connector: str  # after the files: ", which" made the model repeat the question


WORDINGS = {
    "en": Wording("`{symbol}` in {path}", "`{path}`", ", which", ". "),
    "ja": Wording("`{symbol}`（{path}）", "`{path}`", "は、", "。"),
}


@dataclass(frozen=True)
class Choice:
    text: str  # as written in the answer
    path: str


@dataclass(frozen=True)
class Pick:
    choices: list[Choice]  # best-ranked first
    connector: str
    fixed: int = 1  # how many of the first choices the answer names

    @property
    def text(self) -> str:
        """The answer's first words: the named choices, then the connector."""
        return SEPARATOR.join(choice.text for choice in self.choices[:self.fixed]) + self.connector


def pick_for(question: str, candidates: Sequence[ExcerptLike]) -> Pick | None:
    """What an answer to ``question`` starts with, or None for an open question (or nothing to pick from).
    ``candidates``: the excerpts retrieved, or in whole-repository mode the ranked chunks (all of them shown)."""
    kind = question_kind(question)
    wording = WORDINGS[question_language(question)]
    if kind == "definition":
        choices, fixed, connector = definition_choices(candidates, wording), 1, wording.connector
    elif kind in ("file", "files"):
        choices, connector = file_choices(candidates, wording), wording.file_connector
        fixed = MAX_CHOICES if kind == "files" else 1
    else:
        return None
    return Pick(choices, connector, min(fixed, len(choices))) if choices else None


def definition_choices(candidates: Sequence[ExcerptLike], wording: Wording) -> list[Choice]:
    """Definitions among the candidates, best search rank first (the context puts the definitions the question
    names first, and a test named after the function would then lead)."""
    ranked = sorted(candidates, key=lambda e: e.rank)  # stable: unranked ones keep the context's order
    found = [Choice(wording.definition.format(symbol=e.symbol, path=e.path), e.path) for e in ranked
             if e.symbol and e.kind in NAMED_KINDS and "`" not in e.symbol]
    return list(dict.fromkeys(found))[:MAX_CHOICES]


def file_choices(candidates: Sequence[ExcerptLike], wording: Wording) -> list[Choice]:
    """Files the excerpts come from (not the repository map, which is not a file): those the file ranking placed
    first (repochat.retrieve.files, which retrieval ran for a question about files), in its order, then the others
    by their chunks' search rank. On dev-swelite the file ranking named a gold file first in 0.61 of the issues, the
    first file among the chunk-search hits in 0.36."""
    ranked = sorted(candidates, key=lambda e: (e.file_rank, e.rank))
    paths = dict.fromkeys(e.path for e in ranked if e.kind != "map" and "`" not in e.path)
    return [Choice(wording.file.format(path=path), path) for path in paths][:MAX_CHOICES]


def pick_grammar(pick: Pick) -> str:
    """GBNF of the pick's text: decoding it under this grammar writes it token by token as the model would."""
    return f"root ::= {gbnf_literal(pick.text)}\n"


def answer_with_pick(engine: Engine, question_tokens: list[int], start: int, pick: Pick, max_tokens: int,
                     on_text: TextSink | None = None) -> Generation:
    """Decode the question, write the pick's text under its grammar, then continue freely. The pick's text is not
    streamed here: the caller showed it before the prefill (repochat.answer.ask), as it comes from the index, not the
    model. The text returned starts with all of it, even where ``max_tokens`` cuts its decoding short."""
    context = engine.context
    assert context is not None, "ensure_context first"
    first_at = 0.0  # when the model wrote the pick's first token

    def note_first(_piece: str) -> None:
        nonlocal first_at
        first_at = first_at or time.monotonic()

    budget = min(max_tokens, len(engine.model.tokenize(pick.text)) + 2)
    picked = generate_constrained(context, question_tokens, pick_grammar(pick), budget, start=start,
                                  on_text=note_first)
    position = start + len(question_tokens) + picked.tokens
    if picked.stopped == "context" or picked.tokens >= max_tokens:
        return Generation(pick.text, picked.tokens, first_at, picked.stopped, position)
    rest = engine.generate([], position, max_tokens - picked.tokens, on_text)  # the last pick token is decoded
    return Generation(pick.text + rest.text, picked.tokens + rest.tokens, first_at or rest.first_token_at,
                      rest.stopped, rest.end)
