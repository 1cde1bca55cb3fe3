"""Chunks of files without a grammar: markdown by headings, prose by paragraphs, anything else by line windows."""

from __future__ import annotations

from repochat.index.pieces import MAX_WINDOW_LINES, Lines, Piece

_FENCES = ("```", "~~~")


def _atx_level(line: str) -> int:
    """Heading level of an ATX heading line ("## Title"), else 0."""
    if not line.startswith("#"):
        return 0
    level = len(line) - len(line.lstrip("#"))
    return level if level <= 6 and (len(line) == level or line[level] in " \t") else 0


def _setext_level(underline: str, title: str) -> int:
    """Level of a setext heading ("Title" over "=====" or "-----"), else 0."""
    mark = underline.strip()
    if len(mark) < 3 or not title.strip() or title.startswith((" " * 4, "\t", "#")):
        return 0
    if mark == "=" * len(mark):
        return 1
    return 2 if mark == "-" * len(mark) else 0


def markdown_headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first row, level, title) of every heading outside fenced code blocks, in order."""
    headings: list[tuple[int, int, str]] = []
    fence = ""
    for row, line in enumerate(lines):
        stripped = line.lstrip()
        if fence:
            fence = "" if stripped.startswith(fence) else fence
            continue
        if stripped.startswith(_FENCES):
            fence = stripped[:3]
            continue
        level = _atx_level(line)
        if level:
            headings.append((row, level, line[level:].strip().rstrip("#").strip()))
        elif row and (line.startswith("=") or line.startswith("-")):
            level = _setext_level(line, lines[row - 1])
            if level and (not headings or headings[-1][0] != row - 1):
                headings.append((row - 1, level, lines[row - 1].strip()))
    return headings


def markdown_pieces(lines: Lines) -> list[Piece]:
    """One "section" per heading (title as symbol, enclosing titles as context); big sections in windows."""
    headings = markdown_headings(lines.lines)
    bounds = [(0, 0, "")] if not headings or headings[0][0] > 0 else []
    bounds += headings
    pieces: list[Piece] = []
    trail: list[tuple[int, str]] = []  # enclosing (level, title)
    for index, (row, level, title) in enumerate(bounds):
        last = bounds[index + 1][0] - 1 if index + 1 < len(bounds) else len(lines) - 1
        while trail and level and trail[-1][0] >= level:
            trail.pop()
        context = " > ".join(t for _, t in trail)
        signature = lines.lines[row].strip() if level else ""
        for start, end in _spans(lines, row, last):
            pieces.append(Piece("section", title, start, end, context, signature))
        if level:
            trail.append((level, title))
    return pieces


def _spans(lines: Lines, first: int, last: int) -> list[tuple[int, int]]:
    span = lines.trim(first, last)
    if span is None:
        return []
    return [span] if lines.fits(*span) else lines.windows(*span)


def prose_pieces(lines: Lines) -> list[Piece]:
    """Paragraphs packed into "section" chunks within the budget, cut at blank lines."""
    return [Piece("section", "", start, end) for start, end in lines.windows(0, len(lines) - 1)]


def window_pieces(lines: Lines, kind: str = "window") -> list[Piece]:
    """The fallback: windows of at most MAX_WINDOW_LINES lines within the budget, ending at blank lines if any."""
    return [Piece(kind, "", start, end) for start, end in lines.windows(0, len(lines) - 1,
                                                                        max_lines=MAX_WINDOW_LINES)]
