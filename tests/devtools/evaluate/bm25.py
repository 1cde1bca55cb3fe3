"""The control: plain BM25 over fixed line windows, independent of repochat's chunker, tokenizer and store.

Windows are 40 lines with a stride of 20 (each line is in two windows, so a function is never cut in half by a
window edge more than it has to be), and text is split into lowercase runs of letters, digits and underscores:
no identifier splitting, stemming or stop words. This is the "naive BM25 over 40-line windows" baseline. For
file localization, a second control ranks whole files (each file one window), test files left out.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW_LINES = 40
WINDOW_STRIDE = 20
K1 = 1.5
B = 0.75
_WORD = re.compile(r"\w+")
# Test files, by the usual conventions (a tests/ folder, test_x.py, x_test.go): not what a fix changes.
_TEST_PATH = re.compile(r"(^|/)(tests?|testing)/|(^|/)test_[^/]*$|_test\.\w+$")


@dataclass(frozen=True)
class Window:
    path: str
    start_line: int  # 1-based, inclusive
    end_line: int


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_test_path(path: str) -> bool:
    return _TEST_PATH.search(path) is not None


def file_windows(path: str, text: str) -> list[tuple[Window, str]]:
    """Overlapping windows covering every line; a last window wholly inside the one before is not made."""
    lines = text.splitlines()
    starts = range(0, max(len(lines) - WINDOW_STRIDE, 1), WINDOW_STRIDE)
    return [(Window(path, start + 1, min(start + WINDOW_LINES, len(lines)) or 1),
             "\n".join(lines[start:start + WINDOW_LINES])) for start in starts]


class WindowBM25:
    """An in-memory BM25 index of windows; postings are arrays so a query costs one pass per term."""

    def __init__(self, documents: list[tuple[Window, str]]) -> None:
        self.windows = [window for window, _ in documents]
        counts = [Counter(words(text)) for _, text in documents]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        self._norm = K1 * (1 - B + B * lengths / max(lengths.mean() if len(lengths) else 1.0, 1e-9))
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for doc, counter in enumerate(counts):
            for term, tf in counter.items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(doc)
                tfs.append(tf)
        total = len(documents)
        self._postings = {term: (np.array(ids), np.array(tfs, dtype=np.float64),
                                 math.log(1 + (total - len(ids) + 0.5) / (len(ids) + 0.5)))
                          for term, (ids, tfs) in postings.items()}

    @classmethod
    def from_files(cls, root: Path, paths: list[str]) -> "WindowBM25":
        documents: list[tuple[Window, str]] = []
        for rel in paths:
            text = (root / rel).read_bytes().decode("utf-8", errors="replace")
            documents += file_windows(rel, text)
        return cls(documents)

    @classmethod
    def whole_files(cls, root: Path, paths: list[str]) -> "WindowBM25":
        """One window per file, all its lines: BM25 over whole files."""
        documents: list[tuple[Window, str]] = []
        for rel in paths:
            text = (root / rel).read_bytes().decode("utf-8", errors="replace")
            documents.append((Window(rel, 1, max(text.count("\n"), 1)), text))
        return cls(documents)

    def search(self, query: str, k: int) -> list[Window]:
        """The k best windows; each distinct query word counts once."""
        scores = np.zeros(len(self.windows))
        for term in set(words(query)):
            if term in self._postings:
                ids, tfs, idf = self._postings[term]
                scores[ids] += idf * tfs * (K1 + 1) / (tfs + self._norm[ids])
        best = np.argsort(-scores, kind="stable")[:k]
        return [self.windows[i] for i in best if scores[i] > 0]
