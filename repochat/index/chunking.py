"""Cut a source file into chunks that follow its definitions.

A definition that fits the budget is one chunk. A bigger one with nested definitions (a class, an impl block) is
split on them: its header (signature, fields) is a chunk, each nested definition is chunked in turn with the
enclosing signature as ``context``. A bigger one without nested definitions is cut into windows, preferably where
its body's statements start, each keeping the signature as context. Code between definitions becomes "module"
chunks (or chunks of the enclosing definition when it was split). Namespaces and modules are always split.
Every non-blank line lands in exactly one chunk.
"""

from __future__ import annotations

from repochat.index.definitions import Definition
from repochat.index.pieces import Lines, Piece

# Namespaces and modules are containers, not units of meaning: always chunk what they hold one by one.
ALWAYS_SPLIT = frozenset({"module"})
# Code between definitions this small (a closing brace, "end") joins the chunk above it instead of standing alone.
TINY_GAP_CHARS = 16


def _join_context(outer: str, signature: str) -> str:
    return f"{outer}\n{signature}" if outer else signature


class CodeChunker:
    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.pieces: list[Piece] = []

    def chunk_file(self, definitions: list[Definition]) -> list[Piece]:
        if self.lines:
            self._region(0, len(self.lines) - 1, definitions, Piece("module", "", 0, 0))
        return self.pieces

    def _region(self, first: int, last: int, definitions: list[Definition], owner: Piece) -> None:
        """Rows first..last holding ``definitions``; the code around them is chunked like ``owner``."""
        region_start = len(self.pieces)
        row = first
        for definition in definitions:
            start = max(definition.start_row, row)
            if start > definition.end_row or definition.end_row > last:
                continue  # shares its only line with the definition before it, which already holds it
            self._gap(row, start - 1, owner, may_join=len(self.pieces) > region_start)
            self._definition(definition, start, owner.context)
            row = definition.end_row + 1
        self._gap(row, last, owner, may_join=len(self.pieces) > region_start)

    def _gap(self, first: int, last: int, owner: Piece, may_join: bool) -> None:
        span = self.lines.trim(first, last)
        if span is None:
            return
        if may_join and self.lines.size(*span) <= TINY_GAP_CHARS:
            previous = self.pieces[-1]
            self.pieces[-1] = Piece(previous.kind, previous.symbol, previous.start_row, span[1], previous.context,
                                    previous.signature, previous.doc)
            return
        for start, end in self.lines.windows(span[0], span[1]):
            self.pieces.append(Piece(owner.kind, owner.symbol, start, end, owner.context))

    def _definition(self, definition: Definition, start: int, context: str) -> None:
        end = definition.end_row
        if self.lines.fits(start, end) and not (definition.children and definition.kind in ALWAYS_SPLIT):
            self.pieces.append(Piece(definition.kind, definition.qualname, start, end, context,
                                     definition.signature, definition.doc))
        elif definition.children:
            self._split_container(definition, start, context)
        else:
            self._split_body(definition, start, context)

    def _split_container(self, definition: Definition, start: int, context: str) -> None:
        """Header chunk (signature, fields up to the first nested definition), then the nested definitions."""
        first_child = max(start, definition.children[0].start_row)
        inner = Piece(definition.kind, definition.qualname, start, start,
                      _join_context(context, definition.signature))
        header = self.lines.trim(start, first_child - 1)
        if header is not None:
            for window_start, window_end in self.lines.windows(*header):
                self.pieces.append(Piece(definition.kind, definition.qualname, window_start, window_end, context,
                                         definition.signature, definition.doc))
        self._region(first_child, definition.end_row, definition.children, inner)

    def _split_body(self, definition: Definition, start: int, context: str) -> None:
        """Windows over an oversized definition, cut where its statements start; each keeps the signature."""
        inner_context = _join_context(context, definition.signature)
        cuts = sorted(set(definition.body_rows))
        for window_start, window_end in self.lines.windows(start, definition.end_row, cuts):
            self.pieces.append(Piece(definition.kind, definition.qualname, window_start, window_end, inner_context,
                                     definition.signature, definition.doc))
