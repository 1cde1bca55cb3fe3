"""What a question asks for, by its wording (English and Japanese): a definition ("which function ..."), a file or
files ("which files would need to change ..."), or neither (an open question).

The pick (repochat.answer.pick) starts the answer with the best-ranked candidate of that kind; retrieval
(repochat.retrieve.excerpts) gives a question about files the files ranked best for it. No model here: retrieval
reads it without loading one.
"""

from __future__ import annotations

import re

# The first pattern that matches decides.
QUESTION_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("files", re.compile(r"\b(?:which|what)\s+(?:source\s+)?files\b|どの(?:ソース)?ファイル", re.I)),
    ("definition", re.compile(
        r"\b(?:which|what)\s+(?:\w+\s+)?(?:function|method|class|struct|procedure|routine)s?\b"
        r"|どの(?:関数|メソッド|クラス)|何という(?:関数|メソッド|クラス)|(?:関数|メソッド|クラス)は(?:どれ|何)", re.I)),
    ("file", re.compile(r"\b(?:which|what)\s+(?:source\s+)?file\b|どのファイル", re.I)),
)
FILE_KINDS = frozenset({"file", "files"})
# Quotes a question may put a passage in: from the first opening to the last closing one of a kind (an apostrophe
# inside stays in the passage).
QUOTES = (("'", "'"), ('"', '"'), ("“", "”"), ("「", "」"))
MIN_QUOTED_WORDS = 5  # shorter quotes (an error message's two words) are searched with the rest of the question


def question_kind(question: str) -> str | None:
    """"definition", "file", "files" or None (an open question: no pick)."""
    for kind, pattern in QUESTION_KINDS:
        if pattern.search(question):
            return kind
    return None


def asks_for_files(question: str) -> bool:
    return question_kind(question) in FILE_KINDS


def file_query(question: str) -> str:
    """The text to rank files by for a question about files. A question asked on its first line about a text that
    follows (an issue: "Which files would need to change to resolve this issue?\\n\\n<issue>") goes after that
    text: file ranking reads a text's first line as its title (repochat.retrieve.files), and the issue's own
    title is the one that says what it is about. On 20 dev-swelite issues, with the question first a gold file was
    among the first five files in 12, with it last in 15."""
    first, _, rest = question.strip().partition("\n")
    if rest.strip() and asks_for_files(first):
        return f"{rest.strip()}\n\n{first.strip()}"
    return question


def definition_query(question: str) -> str:
    """The text to search for a question about a definition: a description it quotes ("Which function does the
    following: '<a docstring>'?"), without the words around it, which say what the answer should look like and
    not what it is about. On the 105 dev needle cases, searching the question as asked put the function first in
    0.695 of them, the quoted description alone in 0.724 (as often as the bare description). Other questions as
    asked."""
    if question_kind(question) != "definition":
        return question
    passages = [passage for passage in map(str.strip, _quoted(question)) if len(passage.split()) >= MIN_QUOTED_WORDS]
    return max(passages, key=len) if passages else question


def _quoted(question: str) -> list[str]:
    """What the question quotes, per kind of quote (str.find and rfind: linear in the question's length)."""
    spans = [(question.find(opening), question.rfind(closing)) for opening, closing in QUOTES]
    return [question[start + 1:end] for start, end in spans if 0 <= start < end]
