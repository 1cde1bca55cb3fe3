"""Line ranges of a file and how to cut them into windows of bounded size.

Sizes are estimated from UTF-8 byte counts (prefix sums over line lengths, so any range costs O(1)); exact token
counts are taken once per final chunk, in one batch, by the caller.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add

# Sizes are estimated in UTF-8 bytes: cl100k spends ~4.8 bytes per token on Python, ~3.1 on minified-ish JS and on
# .po files in non-Latin scripts (measured on Django 4.2). Characters would undercount the latter by half.
BYTES_PER_TOKEN = 4
MAX_WINDOW_LINES = 60  # a fallback window is at most this many lines, however short they are


@dataclass(frozen=True)
class Piece:
    """A chunk before its text and token count are filled in: rows are 0-based and inclusive."""

    kind: str
    symbol: str
    start_row: int
    end_row: int
    context: str = ""
    signature: str = ""
    doc: str = ""


def split_lines(text: str) -> list[str]:
    """The lines of a text as git and tree-sitter count them: only "\\n" ends a line (a "\\r" stays in its line), and
    a final newline starts no extra empty line. The index and the review both count rows this way, so that a row
    of a parse tree, of a chunk and of a diff hunk name the same line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class Lines:
    """The lines of a file (without line endings) with O(1) size estimates of any row range."""

    def __init__(self, lines: list[str], max_tokens: int) -> None:
        self.lines = lines
        # One encode of the whole text and a C-level split: no per-line Python work.
        encoded = "\n".join(lines).encode("utf-8", "replace").split(b"\n")
        self.offsets = [0, *accumulate(map(add, map(len, encoded), repeat(1)))]  # each line and its newline
        self.budget = max(1, max_tokens) * BYTES_PER_TOKEN

    def __len__(self) -> int:
        return len(self.lines)

    def size(self, first: int, last: int) -> int:
        """UTF-8 bytes in rows first..last inclusive, newlines between them included."""
        return self.offsets[last + 1] - self.offsets[first]

    def fits(self, first: int, last: int) -> bool:
        return self.size(first, last) <= self.budget

    def is_blank(self, row: int) -> bool:
        return not self.lines[row].strip()

    def trim(self, first: int, last: int) -> tuple[int, int] | None:
        """The range without blank rows at either end; None when only blank rows remain."""
        while first <= last and self.is_blank(first):
            first += 1
        while last >= first and self.is_blank(last):
            last -= 1
        return (first, last) if first <= last else None

    def text(self, first: int, last: int) -> str:
        return "\n".join(self.lines[first:last + 1])

    def _window_end(self, first: int, last: int, max_lines: int) -> int:
        """Last row of the largest window from ``first`` within the budget and ``max_lines`` (at least one row)."""
        by_size = bisect_right(self.offsets, self.offsets[first] + self.budget) - 2
        return max(first, min(last, by_size, first + max_lines - 1))

    def _cut_before(self, first: int, end: int, cuts: list[int]) -> int:
        """A better last row than ``end``: just before a preferred cut row, else at a blank row, in its later half."""
        floor = first + (end - first) // 2 + 1
        index = bisect_right(cuts, end + 1) - 1
        if index >= 0 and cuts[index] > floor:
            return cuts[index] - 1
        for row in range(end, floor - 1, -1):
            if self.is_blank(row):
                return row
        return end

    def windows(self, first: int, last: int, cuts: list[int] | None = None,
                max_lines: int = 1 << 30) -> list[tuple[int, int]]:
        """Cut rows first..last into non-blank-trimmed windows within the budget.

        ``cuts`` are sorted rows where a window should preferably start (statement boundaries); without them a
        window prefers to end at a blank line. Whole lines only: a single over-long line is a window of its own.
        """
        result: list[tuple[int, int]] = []
        cut_rows = cuts or []
        row = first
        while row <= last:
            trimmed = self.trim(row, last)
            if trimmed is None:
                break
            row = trimmed[0]
            end = self._window_end(row, last, max_lines)
            if end < last:
                end = self._cut_before(row, end, cut_rows[bisect_left(cut_rows, row + 1):])
            span = self.trim(row, end)
            if span is not None:
                result.append(span)
            row = end + 1
        return result
