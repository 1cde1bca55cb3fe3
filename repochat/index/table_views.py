"""Whole tables read into memory once per table version: the vector matrix and the chunk directory. A server asks
the same index many times, and one such read serves every query until the index changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .lance_api import Table

T = TypeVar("T")

VECTOR_CACHE: dict[str, Any] = {}  # the last vector matrix loaded
DIRECTORY_CACHE: dict[str, Any] = {}  # the last chunk directory loaded


@dataclass
class ChunkDirectory:
    """Rows of (path, start_line, end_line, symbol, _rowid), by embed key, by the last part of the symbol and by
    path."""

    by_embed_key: dict[str, list[dict[str, Any]]]
    by_name: dict[str, list[dict[str, Any]]]
    by_path: dict[str, list[dict[str, Any]]]  # in line order

    @staticmethod
    def of(rows: list[dict[str, Any]]) -> ChunkDirectory:
        directory = ChunkDirectory({}, {}, {})
        for row in sorted(rows, key=lambda row: (row["path"], row["start_line"])):
            key = row.pop("embed_key")
            if key:
                directory.by_embed_key.setdefault(key, []).append(row)
            if row["symbol"]:
                directory.by_name.setdefault(row["symbol"].rsplit(".", 1)[-1], []).append(row)
            directory.by_path.setdefault(row["path"], []).append(row)
        return directory

    def chunk_at(self, path: str, line: int) -> dict[str, Any] | None:
        return next((row for row in self.by_path.get(path, ()) if row["start_line"] <= line <= row["end_line"]),
                    None)


def cached(cache: dict[str, Any], key: object, load: Callable[[], T]) -> T:
    """``load()``, kept in ``cache`` (one entry) while ``key`` (which index, which table version) stays the same."""
    if cache.get("key") != key:
        cache.update(key=key, value=load())
    value: T = cache["value"]  # what load() returned for this key
    return value


def load_vector_matrix(table: Table) -> tuple[list[str], Any]:
    data = table.search().select(["embed_key", "vector"]).limit(None).to_arrow()
    vectors = data.column("vector").combine_chunks()
    matrix = vectors.values.to_numpy(zero_copy_only=False).reshape(len(vectors), -1)
    return data.column("embed_key").to_pylist(), matrix


def load_chunk_directory(table: Table) -> ChunkDirectory:
    rows = table.search().select(["embed_key", "symbol", "path", "start_line", "end_line"]).with_row_id(True) \
        .limit(None).to_arrow().to_pylist()
    return ChunkDirectory.of(rows)
