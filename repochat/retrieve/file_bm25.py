"""BM25 over whole files, built from the index's chunks: evidence for the file ranking (repochat.retrieve.files).

The full-text lists score chunks, and a file's chunk scores summed favour files cut into many small chunks; BM25 over
a whole file counts each of the query's words once per file, saturated and normalized by the file's length, which is
how plain whole-file BM25 found the fixed file of issues whose words are spread over a file's functions.

Documents are the files' chunks' searchable text (identifiers split into their parts, as the full-text index reads
them); the postings are built once per chunks table version (about 1.5 s for sympy's 50,000 chunks) and kept.

    scores = file_bm25(store, issue_text)   # {path: score relative to the best file, 0..1}
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..index.identifiers import searchable
from ..index.lance_api import Table
from ..index.store import IndexStore

K1 = 1.2
B = 0.75
_WORD = re.compile(r"\w+")
_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class FilePostings:
    paths: list[str]
    norms: np.ndarray  # K1 * (1 - B + B * length / mean length), per file
    postings: dict[str, tuple[np.ndarray, np.ndarray, float]]  # word -> (file ids, counts, idf)

    def scores(self, query: str) -> np.ndarray:
        """Each file's BM25 score for ``query``; each distinct word of it counts once."""
        scores = np.zeros(len(self.paths))
        for word in set(words(query)):
            if word in self.postings:
                ids, counts, idf = self.postings[word]
                scores[ids] += idf * counts * (K1 + 1) / (counts + self.norms[ids])
        return scores


def words(text: str) -> list[str]:
    return _WORD.findall(searchable(text).lower())


def file_bm25(store: IndexStore, query: str, known: set[str] | None = None, k: int = 50) -> dict[str, float]:
    """The ``k`` files of best BM25 score for ``query`` (of ``known`` when given), each score relative to the best
    one's."""
    index: FilePostings = store.cached_per_version(_CACHE, "chunks", build_postings)
    scores = index.scores(query)
    if known is not None:
        scores = scores * np.array([path in known for path in index.paths])
    best = [i for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]
    return {index.paths[i]: float(scores[i] / scores[best[0]]) for i in best}


def build_postings(table: Table) -> FilePostings:
    """The postings of every indexed file: its chunks' searchable text counted as one document."""
    data = table.search().select(["path", "search_text"]).limit(None).to_arrow()
    counts: dict[str, Counter[str]] = {}
    for path, text in zip(data.column("path").to_pylist(), data.column("search_text").to_pylist()):
        counts.setdefault(path, Counter()).update(_WORD.findall(text.lower()))
    paths = list(counts)
    lengths = np.array([sum(counts[path].values()) for path in paths], dtype=np.float64)
    norms = K1 * (1 - B + B * lengths / max(float(lengths.mean()) if len(lengths) else 1.0, 1.0))
    grouped: dict[str, tuple[list[int], list[int]]] = {}
    for file, path in enumerate(paths):
        for word, count in counts[path].items():
            ids, tfs = grouped.setdefault(word, ([], []))
            ids.append(file)
            tfs.append(count)
    total = len(paths)
    postings = {word: (np.array(ids), np.array(tfs, dtype=np.float64),
                       math.log(1 + (total - len(ids) + 0.5) / (len(ids) + 0.5)))
                for word, (ids, tfs) in grouped.items()}
    return FilePostings(paths, norms, postings)
