"""The token stream of a question: chat-template head, the repository (or retrieved excerpts), the question, and the
template tail. Everything before the question is the cacheable prefix, identical for every question asked about the
same files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from ..engine.chat import ChatFrame, chat_frame
from ..engine.llama import LlamaModel
from ..engine.gguf import read_gguf
from .render import CITATION_RULES, ShownLines, line_count, render_block

# Between a remembered whole-repository layout and the file versions appended after it (repochat.answer.prefix_layout).
APPENDED_HEADING = ("=== Files changed since: where a file appears again below, its last copy is the current one "
                    "and the earlier copies are out of date ===\n\n")


_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
# The instruction after the question, in the question's language: the model answered a Japanese question in English
# when told only "Give the answer."
ANSWER_INSTRUCTIONS = {"en": "Give the answer.", "ja": "日本語で答えてください。"}


class ExcerptLike(Protocol):
    """What a prompt reads of an excerpt (retrieve.excerpts.Excerpt, a frozen dataclass: read-only here too)."""

    @property
    def path(self) -> str: ...
    @property
    def start_line(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def symbol(self) -> str: ...  # the definition it holds ("" for other lines)
    @property
    def kind(self) -> str: ...  # its index kind (function, class, ...; "map" for the repository map)
    @property
    def rank(self) -> int: ...  # its place in the search ranking (lower is better)
    @property
    def file_rank(self) -> int: ...  # a question about files: its file's place in the file ranking (lower is better)


@dataclass(frozen=True)
class RenderedFile:
    path: str
    text: str  # header + numbered lines
    lines: int
    deleted: bool = False  # a notice that the file was removed (in a layout's appended part)


@dataclass
class Prompt:
    tokens: list[int]  # the cacheable prefix: template head + blocks
    head: list[int] = field(default_factory=list)  # the template head, tokens[:len(head)]
    pieces: list[list[int]] = field(default_factory=list)  # the blocks after the head, one per file or excerpt
    shown: ShownLines = field(default_factory=ShownLines)
    paths: list[str] = field(default_factory=list)  # files (at least partly) in the context, in order
    appended: int = 0  # whole repository: files appended after the remembered layout (changed or removed)
    excerpts: list[ExcerptLike] = field(default_factory=list)  # retrieval: the excerpts shown, in order

    def add_piece(self, tokens: list[int]) -> None:
        self.tokens.extend(tokens)
        self.pieces.append(tokens)

    def show_files(self, entries: Sequence[RenderedFile]) -> None:
        """Files in the context, in order. Only the last copy of a file counts as shown, so a citation of a
        superseded copy is flagged."""
        last = {f.path: index for index, f in enumerate(entries)}
        for index, rendered in enumerate(entries):
            if last[rendered.path] == index and not rendered.deleted:
                self.shown.add(rendered.path, 1, max(rendered.lines, 1))
                self.paths.append(rendered.path)

    def show_excerpt(self, excerpt: ExcerptLike) -> None:
        self.excerpts.append(excerpt)
        self.shown.add(excerpt.path, excerpt.start_line, excerpt.start_line + max(line_count(excerpt.text), 1) - 1)
        if excerpt.path not in self.paths:
            self.paths.append(excerpt.path)


def question_language(question: str) -> str:
    """"ja" for a question written in Japanese (any kana or kanji), else "en"."""
    return "ja" if _JAPANESE.search(question) else "en"


def question_text(question: str, cite: bool) -> str:
    """The question and the answer instruction in the question's language (with ``cite``, the citation reminder)."""
    instruction = ANSWER_INSTRUCTIONS[question_language(question)]
    if cite:
        instruction += " Then the source as file:line-line (for example src/example.py:10-12)."
    return f"Question: {question.strip()}\n{instruction}"


def deletion_notice(path: str) -> RenderedFile:
    """Marks a file that is no longer part of the repository's readable files (deleted, ignored or too large now)."""
    return RenderedFile(path, f"=== {path} (removed) ===\n\n", 0, deleted=True)


def render_file(path: str, text: str) -> RenderedFile:
    return RenderedFile(path, render_block(path, text), line_count(text))


class Prompter:
    """Turns texts into model tokens the way the model's chat template expects."""

    def __init__(self, model: LlamaModel, model_path: Path, system: str = CITATION_RULES) -> None:
        self.model = model
        template = read_gguf(model_path).get("tokenizer.chat_template")
        bos, eos = model.special_text(model.bos_id), model.special_text(model.eos_id)
        self.frame: ChatFrame = chat_frame(template if isinstance(template, str) else None, system, bos, eos)
        self.head = self._template_tokens(self.frame.before, first=True)
        self.tail = self._template_tokens(self.frame.after, first=False)

    def _template_tokens(self, text: str, first: bool) -> list[int]:
        """Template text: special tokens parsed; BOS at the very start if the model wants one and it is missing."""
        tokens = self.model.tokenize(text, add_special=False, parse_special=True)
        bos = self.model.bos_id
        if first and self.model.add_bos and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def content(self, text: str) -> list[int]:
        """Repository or user text: a '<|im_end|>' written inside a file stays plain text."""
        return self.model.tokenize(text, add_special=False, parse_special=False)

    def question(self, question: str, cite: bool = True) -> list[int]:
        """The part after the cached prefix; the citation reminder sits next to the question, where a small model
        still pays attention to it. Without it (``cite`` False: repochat.answer.sources adds the citations) the model no
        longer copies the example path as its source."""
        return self.content(question_text(question, cite)) + self.tail

    def whole(self, files: list[RenderedFile], appended: Sequence[RenderedFile] = ()) -> Prompt:
        """Every file in order; then the versions appended since that order was laid out (see repochat.answer.prefix_layout),
        under a heading. Only the last copy of a file counts as shown, so a citation of a superseded copy is
        flagged."""
        entries = [*files, *appended]
        prompt = Prompt(list(self.head), list(self.head), appended=len({f.path for f in appended}))
        for index, rendered in enumerate(entries):
            if index == len(files):
                prompt.add_piece(self.content(APPENDED_HEADING))
            prompt.add_piece(self.content(rendered.text))
        prompt.show_files(entries)
        return prompt

    def excerpts(self, excerpts: Sequence[ExcerptLike], max_tokens: int) -> Prompt:
        """Retrieved excerpts in the given order, as many as fit in ``max_tokens`` (the head included)."""
        prompt = Prompt(list(self.head), list(self.head))
        for excerpt in excerpts:
            tokens = self.content(render_block(excerpt.path, excerpt.text, excerpt.start_line))
            if len(prompt.tokens) + len(tokens) > max_tokens:
                continue  # a smaller excerpt further down may still fit
            prompt.add_piece(tokens)
            prompt.show_excerpt(excerpt)
        return prompt
