"""One file in, its chunks and symbols out: the entry point of the chunker.

Files in a tree-sitter language are cut along their definitions (chunks.scm) and yield symbols (tags.scm); markdown
is cut by headings, prose by paragraphs, and every other text file into line windows. A file the grammar or its
queries cannot handle falls back to windows rather than failing the index.
"""

from __future__ import annotations

from dataclasses import dataclass

from repochat.index.chunking import CodeChunker
from repochat.index.definitions import extract_definitions
from repochat.index.languages import LanguageSpec, is_prose, language_for, text_kind, ts_parser
from repochat.index.pieces import Lines, Piece, split_lines
from repochat.index.symbols import extract_symbols
from repochat.index.textchunks import markdown_pieces, prose_pieces, window_pieces
from repochat.records import Chunk, Symbol
from repochat.tokens import count_tokens_batch, estimate_tokens


@dataclass(frozen=True)
class ParsedFile:
    language: str  # a tree-sitter language name, "markdown" or "text"
    chunks: list[Chunk]  # in file order; every non-blank line is in exactly one
    symbols: list[Symbol]  # definitions and references, in file order


def _code_pieces(spec: LanguageSpec, path: str, text: str, lines: Lines) -> tuple[list[Piece], list[Symbol]]:
    source = text.encode("utf-8", "replace")
    tree = ts_parser(spec).parse(source)
    definitions = extract_definitions(spec, tree, source, lines.lines)
    symbols = extract_symbols(spec, tree, path, definitions)
    return CodeChunker(lines).chunk_file(definitions), symbols


def _text_pieces(path: str, lines: Lines) -> tuple[str, list[Piece]]:
    if text_kind(path) == "markdown":
        return "markdown", markdown_pieces(lines)
    return "text", prose_pieces(lines) if is_prose(path) else window_pieces(lines)


def _chunks(path: str, language: str, pieces: list[Piece], lines: Lines) -> list[Chunk]:
    texts = [lines.text(piece.start_row, piece.end_row) for piece in pieces]
    counts = [estimate_tokens(t) for t in texts] if language == "text" else count_tokens_batch(texts)
    return [Chunk(path=path, language=language, kind=piece.kind, symbol=piece.symbol,
                  start_line=piece.start_row + 1, end_line=piece.end_row + 1, text=chunk_text,
                  context=piece.context, signature=piece.signature, doc=piece.doc, tokens=count)
            for piece, chunk_text, count in zip(pieces, texts, counts)]


def parse_file(path: str, text: str, max_chunk_tokens: int = 400) -> ParsedFile:
    """Chunks and symbols of one file; ``path`` (repository-relative) picks the language and goes into records."""
    text = text.replace("\r\n", "\n")
    spec = language_for(path, text)
    lines = Lines(split_lines(text), max_chunk_tokens)
    if not text.strip():
        return ParsedFile(spec.name if spec else text_kind(path), [], [])
    if spec is not None:
        try:
            pieces, symbols = _code_pieces(spec, path, text, lines)
            return ParsedFile(spec.name, _chunks(path, spec.name, pieces, lines), symbols)
        except (ValueError, RuntimeError, UnicodeError):
            # A grammar or query that cannot handle this file: keep its text searchable as windows.
            return ParsedFile(spec.name, _chunks(path, spec.name, window_pieces(lines), lines), [])
    language, pieces = _text_pieces(path, lines)
    return ParsedFile(language, _chunks(path, language, pieces, lines), [])
