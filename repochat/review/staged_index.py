"""Bring the index in line with the content under review: the staged blobs, not the work-tree files.

A commit records the index (staging area), so the symbols a review looks up must come from there: a file with
staged and unstaged edits is indexed as staged. Each changed file's rows are replaced exactly as the indexer would
write them for that content; its row in ``files`` gets mtime 0, so the next `repochat index` compares the work-tree
file by content hash and keeps these rows when the two agree (no reparse) or redoes the file when they differ.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..index.indexer import INDEXED
from ..index.indexer import chunk_record, content_hash
from ..index.lock import index_write_lock
from ..index.parse import parse_file
from ..index.store import IndexStore
from ..repo.filters import indexable_text, path_skip_reason
from .diff import Change, FileChange

_RECHECK_MTIME = 0.0  # no real file has it: the indexer's size+mtime shortcut never trusts these rows


def open_index(root: Path, settings: Settings, for_writing: bool = False) -> IndexStore:
    """The repository's index; IndexMissing / IndexStoreError (one line each) when there is none or it is unusable.
    A reader sees the last published update; the writer sees (and later publishes) its own writes."""
    return IndexStore.open(settings.index_path(root), pinned=not for_writing)


def index_change(store: IndexStore, change: Change, settings: Settings) -> int:
    """Store the new side of every changed file (and drop deleted and renamed-away paths). Returns files written.
    Holds the index lock while writing: a watcher or `repochat index` may be writing to the same index."""
    with index_write_lock(store.path.parent):
        store.refresh()  # catch up with writes made since the store was opened
        return _write_change(store, change, settings)


def _write_change(store: IndexStore, change: Change, settings: Settings) -> int:
    gone = [f.old_path for f in change.files if f.status in "DR" and f.old_path]
    if gone:
        store.replace_content(gone, [], [])
        store.replace_files(gone, [])
    # Paths the walker never indexes (secrets, generated) stay out of the index here too.
    written = [f for f in change.files
               if f.status != "D" and f.staged_bytes is not None and not path_skip_reason(f.path)]
    for file in written:
        _index_blob(store, file, settings)
    store.ensure_fts()
    store.publish_snapshot()  # readers opened from now on see the staged content
    return len(written)


def _index_blob(store: IndexStore, file: FileChange, settings: Settings) -> None:
    data = file.staged_bytes or b""
    sha = content_hash(data)
    row = {"path": file.path, "sha": sha, "size": len(data), "mtime": _RECHECK_MTIME, "language": "",
           "status": INDEXED, "chunks": 0, "tokens": 0}
    text, reason = (None, "too_large") if len(data) > settings.max_file_size else indexable_text(data, file.path)
    if text is None:
        store.replace_content([file.path], [], [])
        store.replace_files([file.path], [{**row, "status": reason or "not_utf8"}])
        return
    parsed = parse_file(file.path, text)
    store.replace_content([file.path], [chunk_record(c) for c in parsed.chunks], parsed.symbols)
    store.replace_files([file.path], [{**row, "language": parsed.language, "chunks": len(parsed.chunks),
                                       "tokens": sum(c.tokens for c in parsed.chunks)}])
