"""Immutable records that flow between the indexer, the store and retrieval.

They map one-to-one onto LanceDB rows (``asdict``), so the store needs no translation layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """A file the walker decided may be read and indexed."""

    path: str  # repository-relative, POSIX separators
    size: int
    mtime: float


@dataclass(frozen=True)
class Chunk:
    """A piece of a file that is retrieved and shown as a unit."""

    path: str
    language: str
    kind: str  # function, method, class, section, window, ...
    symbol: str  # qualified name of the definition ("Class.method"), "" for windows
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    text: str
    context: str = ""  # enclosing signature lines kept for a split definition (e.g. "class Foo(Base):")
    signature: str = ""  # first line(s) of the definition
    doc: str = ""  # docstring or doc comment, when the grammar captures one
    tokens: int = 0


@dataclass(frozen=True)
class Symbol:
    """A definition of, or a reference to, a name."""

    path: str
    name: str
    kind: str  # function, method, class, call, type, ...
    role: str  # "definition" or "reference"
    line: int  # 1-based
    scope: str = ""  # qualified name of the enclosing definition ("" at module level)
