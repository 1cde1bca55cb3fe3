"""Identifier splitting, so that parseHTTPRequest and parse_http_request are found by 'parse http request'.

The full-text index tokenizes on punctuation only; this module gives the index a field of identifier parts
(code_words) and adds the parts of compound identifiers to queries.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Identifiers that have something to split: an underscore between word characters, or a lower->upper case change.
_COMPOUND = re.compile(r"\b[A-Za-z0-9]*(?:[A-Za-z0-9]_|[a-z0-9][A-Z]|[A-Z][A-Z][a-z])[A-Za-z0-9_]*")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@lru_cache(maxsize=200_000)
def split_identifier(name: str) -> tuple[str, ...]:
    """'parseHTTPRequest' -> ('parse', 'http', 'request'); a simple word -> (word,)."""
    return tuple(part.lower() for part in _PART.findall(name))


def identifier_parts(text: str) -> str:
    """The parts of every compound identifier in text, each distinct identifier once, space-separated."""
    parts: list[str] = []
    for name in set(_COMPOUND.findall(text)):
        pieces = split_identifier(name)
        if len(pieces) > 1:
            parts.extend(pieces)
    return " ".join(parts)


def searchable(text: str) -> str:
    """Text as the full-text index should see it: the original words plus identifier parts."""
    extra = identifier_parts(text)
    return f"{text}\n{extra}" if extra else text


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifier_words(text: str) -> str:
    """Every identifier in text, whole and (when compound) split: 'def get_url(self)' -> 'def get_url get url self'."""
    words: list[str] = []
    for name in dict.fromkeys(_IDENTIFIER.findall(text)):
        words.append(name)
        pieces = split_identifier(name)
        if len(pieces) > 1:
            words.extend(pieces)
    return " ".join(words)


def words_of_code(code: str) -> str:
    """Code with each compound identifier replaced by its parts, punctuation kept."""
    return _COMPOUND.sub(lambda m: " ".join(split_identifier(m.group(0))), code)


_DOC_LINE_MARKERS = " \t\"'`/#*!-;%"


def without_doc(text: str, doc: str) -> str:
    """Text without the lines of its own doc comment or docstring (``doc`` is the cleaned doc text): a line goes
    when what is left of it, without comment markers and quotes, is a line of the doc."""
    if not doc:
        return text
    doc_lines = {line.strip() for line in doc.splitlines()} - {""}
    return "\n".join(line for line in text.splitlines() if line.strip(_DOC_LINE_MARKERS) not in doc_lines)


def code_words(text: str) -> str:
    """The identifiers of code as lowercase words, compound ones split: 'self.retry_count += 1' -> 'self retry
    count'. What the code does, in the words a question would use."""
    return " ".join(part for name in _IDENTIFIER.findall(text) for part in split_identifier(name))
