"""meta.json, the index's record of itself: schema version, embedding model, generation, the files the walker left
out, and the published snapshot of table versions (the last complete update, which readers pin, and the one before).
"""

from __future__ import annotations

import json
from typing import Any

from ..atomic import write_atomic
from ..errors import IndexStoreError
from .lance_errors import detail
from .location import IndexDir, ObjectFolder

META_FILE = "meta.json"


def read_meta(folder: IndexDir) -> dict[str, Any]:
    """The meta of the index in ``folder``; ValueError or OSError when it is unreadable (the caller says so)."""
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json holds a {type(meta).__name__}, not an object")
    return meta


def write_meta(folder: IndexDir, meta: dict[str, Any]) -> None:
    """Replace meta.json atomically, through a temporary file of this writer's own (two writers must never share
    one: the second rename would find it gone). In a bucket, one PUT is atomic by itself."""
    if isinstance(folder, ObjectFolder):
        (folder / META_FILE).write_text(json.dumps(meta))
        return
    try:
        write_atomic(folder / META_FILE, json.dumps(meta).encode(), prefix="meta.", suffix=".json.tmp")
    except OSError as exc:
        raise IndexStoreError(f"cannot write the index at {folder}: {detail(exc)}") from exc


def record_snapshot(meta: dict[str, Any], snapshot: dict[str, int]) -> None:
    """Make ``snapshot`` (table name -> version) the published one. The snapshot before it is kept too: readers
    opened just before this may still be on it (see upkeep.maintain)."""
    if meta.get("snapshot") != snapshot:
        meta["previous_snapshot"] = meta.get("snapshot", {})
    meta["snapshot"] = snapshot


def pinned_version(meta: dict[str, Any], table: str) -> int | None:
    """The version of ``table`` in the published snapshot (None before the first complete update)."""
    version: int | None = meta.get("snapshot", {}).get(table)
    return version
