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
