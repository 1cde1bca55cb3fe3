"""Definitions and references of a parsed file, read with the language's tags.scm query (Aider's naming).

Only the ``@name.definition.<kind>`` and ``@name.reference.<kind>`` captures are read; the enclosing
``@definition.<kind>`` / ``@reference.<kind>`` captures are kept in the .scm files for compatibility with Aider's
queries. Each symbol's scope is the qualified name of the innermost definition (from chunks.scm) around it.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import cache

from tree_sitter import Query, QueryCursor, Tree

from repochat.index.definitions import METHOD_CONTAINERS, Definition
from repochat.index.languages import LanguageSpec, node_text, ts_query
from repochat.records import Symbol

_ROLES = {"definition": "definition", "reference": "reference"}


def _flatten(definitions: list[Definition], out: list[Definition]) -> list[Definition]:
    """Pre-order walk: definitions sorted by start byte, parents before their children."""
    for definition in definitions:
        out.append(definition)
        _flatten(definition.children, out)
    return out


class _Scopes:
    """Finds the innermost definition around a byte offset."""

    def __init__(self, definitions: list[Definition]) -> None:
        self.flat = _flatten(definitions, [])
        self.starts = [d.start_byte for d in self.flat]
        self.by_name_byte = {d.name_byte: d for d in self.flat}

    def around(self, offset: int) -> Definition | None:
        index = bisect_right(self.starts, offset) - 1
        found = self.flat[index] if index >= 0 else None
        while found is not None and offset >= found.end_byte:
            found = found.parent
        return found


def _parse_capture(capture: str) -> tuple[str, str] | None:
    """("definition" | "reference", kind) for a name capture such as "name.reference.call"."""
    parts = capture.split(".", 2)
    if len(parts) != 3 or parts[0] != "name" or parts[1] not in _ROLES:
        return None
    return parts[1], parts[2]


@cache
def _name_query(spec: LanguageSpec) -> tuple[Query, dict[str, int]]:
    """tags.scm with only its name captures left on, and each capture's rank (order of first use in the file).

    When two captures name the same node, the one used first in tags.scm wins, so a file lists specific patterns
    (a constructor call) before general ones (any type name).
    """
    query = ts_query(spec, "tags.scm")
    ranks: dict[str, int] = {}
    for index in range(query.capture_count):
        name = query.capture_name(index)
        if _parse_capture(name) is None:
            query.disable_capture(name)  # @definition.* / @reference.*: not read, not worth materialising
        else:
            ranks[name] = index
    return query, ranks


def extract_symbols(spec: LanguageSpec, tree: Tree, path: str, definitions: list[Definition]) -> list[Symbol]:
    """Definitions and references in file order, each with the qualified name of its enclosing definition."""
    query, ranks = _name_query(spec)
    captures = QueryCursor(query).captures(tree.root_node)
    scopes = _Scopes(definitions)
    found: dict[int, Symbol] = {}  # by name offset: a node is one symbol, the first capture in tags.scm wins
    for capture in sorted(captures, key=lambda name: ranks.get(name, len(ranks))):
        parsed = _parse_capture(capture)
        if parsed is None:
            continue
        role, kind = parsed
        nodes = captures[capture]
        for node in nodes:
            offset = node.start_byte
            if offset in found:
                continue
            own = scopes.by_name_byte.get(offset) if role == "definition" else None
            if own is not None:  # a definition chunks.scm knows: its kind (method, struct...) and owner
                symbol_kind, scope = own.kind, own.qualname[:len(own.qualname) - len(own.name)].rstrip(".")
            else:
                enclosing = scopes.around(offset)
                symbol_kind, scope = kind, enclosing.qualname if enclosing is not None else ""
                if role == "definition" and kind == "function" and enclosing is not None \
                        and enclosing.kind in METHOD_CONTAINERS:
                    symbol_kind = "method"  # a declaration inside a class body, as chunks name it
            name = node_text(node)
            found[offset] = Symbol(path, name, symbol_kind, role, node.start_point.row + 1, scope)
    return [found[offset] for offset in sorted(found)]
