"""How files and excerpts are shown to the model, and how its citations are checked against what it was shown.

Every block starts with a header naming the path and line range, and every line carries its line number, so the
model can cite ``path:start-end``. A citation is valid only if all of its lines were in the context.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

BLOCK_HEADER = "=== {path} (lines {start}-{end}) ===\n"
CITATION_RULES = (
    "You answer questions about a source repository using the files given in the user's message. Each file "
    "starts with a line '=== path (lines a-b) ===' and every line is prefixed with its line number and '|'. "
    "Answer in the language of the question. Cite the lines you rely on as path:start-end "
    "(for example src/app.py:12-30), using the line numbers shown."
)
# path:12 or path:12-30; the path must contain a dot or a slash so that "time: 12:30" is not a citation.
_CITATION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]*[\w-]\.[\w]+|(?:[\w.-]+/)+[\w.-]+):(\d+)(?:\s*[-–]\s*(\d+))?")


def number_lines(text: str, first_line: int = 1) -> str:
    lines = text.splitlines()
    return "".join(f"{first_line + offset}|{line}\n" for offset, line in enumerate(lines))


def line_count(text: str) -> int:
    return len(text.splitlines())


def render_block(path: str, text: str, start_line: int = 1) -> str:
    """One file (start_line 1) or excerpt: header, numbered lines, blank line."""
    end_line = start_line + max(line_count(text), 1) - 1
    return BLOCK_HEADER.format(path=path, start=start_line, end=end_line) + number_lines(text, start_line) + "\n"


@dataclass
class ShownLines:
    """Which lines of which files the model was shown."""

    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, path: str, start: int, end: int) -> None:
        self.ranges[path].append((start, end))

    def covers(self, path: str, start: int, end: int) -> bool:
        """True if every line start..end of path was shown (ranges may be split over several excerpts)."""
        needed = start
        for low, high in sorted(self.ranges.get(path, [])):
            if low > needed:
                break
            needed = max(needed, high + 1)
            if needed > end:
                return True
        return False

    @property
    def paths(self) -> list[str]:
        return sorted(self.ranges)


def parse_citations(answer: str) -> list[tuple[str, int, int]]:
    """``path:start-end`` references in the answer, in order, without duplicates."""
    found: list[tuple[str, int, int]] = []
    for match in _CITATION.finditer(answer):
        path = match.group(1).removeprefix("./")
        start = int(match.group(2))
        end = int(match.group(3) or start)
        citation = (path, min(start, end), max(start, end))
        if citation not in found:
            found.append(citation)
    return found


def check_citations(answer: str, shown: ShownLines) -> list[dict[str, object]]:
    """Each citation with ``valid``: whether those lines really were in the context."""
    return [{"path": path, "start": start, "end": end, "valid": start >= 1 and shown.covers(path, start, end)}
            for path, start, end in parse_citations(answer)]
