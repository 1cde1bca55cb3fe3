"""Build and update a repository's index incrementally: only files whose content hash changed are parsed again."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import tokens
from ..callbacks import Progress
from ..config import Settings
from ..errors import IndexStoreError
from ..records import Chunk, SourceFile, Symbol
from ..repo.filters import indexable_text
from ..repo.walk import walk_repository
from ..repo.safe_read import read_regular
from .embedder import embedder_id, load_embedder
from .identifiers import (
    code_words,
    identifier_words,
    split_identifier,
    without_doc,
    words_of_code,
)
from .lance_errors import IndexDamaged
from .location import refuse_writes
from .lock import IndexBusy, index_write_lock, lock_notice
from .parse import parse_file
from .schema import chunk_row
from .store import IndexStore
from .upkeep import damage, maintain

log = logging.getLogger("repochat.index")

WRITE_BATCH_FILES = 1000  # files per write: bounds memory, and an interrupted run keeps what was written
EMBED_BATCH = 32
PUBLISH_EVERY_BATCHES = 50
INDEXED = "indexed"
PROSE_LANGUAGES = {"text"}  # prose windows (.po, .txt data) cost embedding time and add little


@dataclass
class IndexSummary:
    root: str
    index_path: str
    files: int = 0
    parsed: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    symbols: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notice: str = ""
    seconds: float = 0.0
    embedded: int = 0
    vectors_pending: int = 0


@dataclass
class _FileResult:
    source: SourceFile
    sha: str
    status: str
    chunks: list[Chunk] = field(default_factory=list)
    symbols: list[Symbol] = field(default_factory=list)
    language: str = ""
    previous: dict[str, Any] | None = None  # the stored row, when only the mtime changed (same content)


def open_for_update(root: Path, settings: Settings, rebuild: bool = False) -> tuple[IndexStore, str]:
    """The index opened for writing, repaired or rebuilt as needed; call it holding the index lock."""
    index_dir = settings.index_path(root)
    if rebuild:
        IndexStore.remove(index_dir)
    return IndexStore.create_or_open(index_dir, embedder_id(settings.embedding_model))


def update_index(root: Path, settings: Settings, progress: Progress | None = None,
                 rebuild: bool = False, wait: bool = True,
                 on_wait: Callable[[str], None] | None = lock_notice) -> IndexSummary:
    """Bring the index in line with the work tree. Safe to interrupt: the next run completes it.

    Holds the index lock throughout: another writer (a watcher, a second `repochat index`, a hook) is waited for
    (``on_wait`` says so), or, with ``wait`` False, IndexBusy is raised at once. A failure on the way that the
    damage probe confirms (LanceDB opens lazily: a broken file may show only when written to) gets the index
    rebuilt, once."""
    index_dir = settings.index_path(root)
    refuse_writes(settings.index_read_only, index_dir)
    with index_write_lock(index_dir, wait, on_wait):
        try:
            return _update(root, settings, progress, rebuild)
        except IndexDamaged as exc:
            if rebuild:
                raise
            if not _damaged(index_dir):  # a failed write (a full disk) on a readable index: keep the index
                raise IndexStoreError(f"cannot write the index at {index_dir}: {exc.detail}") from exc
            log.warning("index damaged during the update: %s", exc)
            summary = _update(root, settings, progress, rebuild=True)
            summary.notice = f"rebuilt: the index was damaged ({exc.detail})"
            return summary


def _damaged(index_dir: Any) -> bool:
    try:
        return bool(damage(IndexStore.open(index_dir, pinned=False)))
    except IndexStoreError:
        return True


def _update(root: Path, settings: Settings, progress: Progress | None, rebuild: bool) -> IndexSummary:
    started = time.perf_counter()
    tokens.preload()  # loads while the repository is walked
    store, notice = open_for_update(root, settings, rebuild)
    walk = walk_repository(root, settings)
    stored, suspect = _stored_rows(store)
    summary = IndexSummary(root=str(root), index_path=str(store.path), files=len(walk.files),
                           notice="; ".join(filter(None, [notice, *walk.notices])))
    changed = [f for f in walk.files if not _unchanged(stored.get(f.path), f)]
    summary.unchanged = len(walk.files) - len(changed)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="repochat-index-writer") as writer:
        written: Future[None] | None = None
        for results in _parsed_batches(root, changed, stored):
            if written is not None:
                written.result()  # one batch in flight: bounds memory, and write order stays batch order
            written = writer.submit(_write, store, results)
            summary.parsed += sum(1 for r in results if r.previous is None)
            if progress:
                progress("parse", summary.parsed, len(changed))
        if written is not None:
            written.result()
    walked = {f.path for f in walk.files}
    gone = [path for path in sorted(set(stored) | suspect) if path not in walked]
    store.replace_content(gone, [], [])
    store.replace_files(gone, [])
    summary.deleted = len([path for path in gone if path in stored])
    store.ensure_fts()
    store.save_skipped(walk.skipped)
    store.publish_snapshot()
    _maintain(store)
    _fill_counts(store, summary, settings)
    summary.seconds = time.perf_counter() - started
    return summary


def _stored_rows(store: IndexStore) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The files table by path, less the paths whose rows disagree (redone by this update), and those paths.

    Rows disagree after two writers interleaved without the lock (indexes written before it existed): a path with
    two rows in `files`, or with more or fewer chunks than its row counts (duplicated, or left by a file deleted
    during an interrupted run). Counting rows is cheap; chunk paths are read only when the totals differ."""
    rows = store.table("files").to_arrow().to_pylist()
    stored = {row["path"]: row for row in rows}
    suspect = {path for path, n in Counter(row["path"] for row in rows).items() if n > 1}
    if sum(row["chunks"] for row in stored.values()) != store.table("chunks").count_rows():
        counts = Counter(store.column("chunks", "path"))
        suspect |= {path for path in stored.keys() | counts.keys()
                    if counts.get(path, 0) != (stored[path]["chunks"] if path in stored else 0)}
    for path in suspect:
        stored.pop(path, None)
    return stored, suspect


def _maintain(store: IndexStore) -> None:
    """Compaction and cleanup of old versions; a failure costs disk space, not the update just published."""
    try:
        compacted = maintain(store)
        if compacted:
            log.info("compacted %s", ", ".join(compacted))
    except IndexStoreError as exc:
        log.warning("index compaction skipped: %s", exc)


def embed_pending(store: IndexStore, settings: Settings, progress: Progress | None = None,
                  wait: bool = True, on_wait: Callable[[str], None] | None = lock_notice) -> int:
    """Compute vectors for chunks that have none yet (keyed by content, so unchanged code is never re-embedded).

    The model runs outside the index lock; each batch of vectors is written holding it, after checking that the
    index was not rebuilt meanwhile and leaving out keys another writer has stored since. With ``wait`` False, a
    busy lock ends the run (what was written stays)."""
    index_dir = store.path.parent
    refuse_writes(settings.index_read_only, index_dir)
    notices = _once(on_wait) if on_wait else None
    with index_write_lock(index_dir, wait, notices):
        store = IndexStore.open(index_dir, pinned=False)
        pending = _pending_embeddings(store)
    if not pending:
        return 0
    embedder = load_embedder(settings.embedding_model, settings.threads)
    started_on = (store.meta.get("generation"), store.meta.get("embedder"))
    done = 0
    try:
        for number, batch in enumerate(_batches(sorted(pending.items()), EMBED_BATCH), 1):
            vectors = embedder.embed([text for _, text in batch])
            with index_write_lock(index_dir, wait, notices):
                store.refresh()
                if (store.meta.get("generation"), store.meta.get("embedder")) != started_on:
                    break  # rebuilt or re-keyed meanwhile: these vectors may belong to nothing
                keep = _not_stored(store, [key for key, _ in batch])
                if keep:
                    store.add_vectors([batch[i][0] for i in keep], vectors[keep])
                done += len(batch)
                if number % PUBLISH_EVERY_BATCHES == 0:
                    store.publish_snapshot()  # vectors computed so far become visible to readers
            if progress:
                progress("embed", done, len(pending))
    except IndexBusy:
        pass  # someone else is writing; the rest is left for the next run
    if done:
        _publish_vectors(store, wait, notices)
    return done


def _publish_vectors(store: IndexStore, wait: bool, notices: Callable[[str], None] | None) -> None:
    try:
        with index_write_lock(store.path.parent, wait, notices):
            store.refresh()
            store.publish_snapshot()
            _maintain(store)  # one version per batch: a full embedding run leaves hundreds
    except IndexBusy:
        pass  # the writer holding the lock publishes its own snapshot, with these vectors in it


def _once(notice: Callable[[str], None]) -> Callable[[str], None]:
    """``notice`` that speaks the first time only (an embedding run may wait for the lock at many batches)."""
    said: list[str] = []

    def say(message: str) -> None:
        if not said:
            said.append(message)
            notice(message)
    return say


def _not_stored(store: IndexStore, keys: list[str]) -> list[int]:
    """Positions of the keys that still need storing (call it holding the index lock): two embedders working on
    the same pending set must not store a vector twice. The table is asked about these keys themselves, each
    batch: a shortcut on the table's version ("unchanged since I looked, so nobody wrote") stored batches twice,
    since what was looked at then was one batch's keys, not the ones of the batches still to come. The filtered
    read costs about 10 ms per batch at 100,000 vectors, against some 200 ms to embed the batch."""
    have = store.stored_vector_keys(keys)
    return [i for i, key in enumerate(keys) if key not in have]


def count_pending_embeddings(store: IndexStore) -> int:
    """How many distinct embedded texts have no vector yet (keys only: building the texts costs a second)."""
    return len(set(store.column("chunks", "embed_key", "embed_key != ''")) - store.vector_keys())


def embed_text(chunk: Chunk) -> str:
    """The short form that is embedded: what the code is called, where it lives, its doc and its head, with
    identifiers split into words (an English sentence model reads 'retry count' better than 'retryCount')."""
    name = " ".join(split_identifier(chunk.symbol.rsplit(".", 1)[-1])) if chunk.symbol else ""
    head = "\n".join(chunk.text.splitlines()[:12])
    return "\n".join(part for part in (name, chunk.path, chunk.context, chunk.doc, words_of_code(head)) if part)


def _pending_embeddings(store: IndexStore) -> dict[str, str]:
    have = store.vector_keys()
    rows = store.table("chunks").search().select(["embed_key", "symbol", "path", "context", "doc", "text", "language",
                                                  "kind", "start_line", "end_line", "signature"]) \
        .where("embed_key != ''").limit(None).to_arrow().to_pylist()
    pending: dict[str, str] = {}
    for row in rows:
        key = row["embed_key"]
        if key not in have and key not in pending:
            pending[key] = embed_text(Chunk(**{k: v for k, v in row.items() if k != "embed_key"}))
    return pending


def _parsed_batches(root: Path, changed: list[SourceFile],
                    stored: dict[str, dict[str, Any]]) -> Iterator[list[_FileResult]]:
    """Files parsed in batches, in this thread; update_index writes a batch in another thread while the next one is
    parsed (LanceDB writes release the GIL). Worker processes were measured slower (Django: 10.6 s against 7.1 s):
    shipping the parsed text back costs more than the parsing they share; reading files ahead in threads gained
    nothing measurable."""
    for batch in _batches(changed, WRITE_BATCH_FILES):
        yield [_index_file(root, f, stored.get(f.path)) for f in batch]


def _unchanged(row: dict[str, Any] | None, source: SourceFile) -> bool:
    return row is not None and row["size"] == source.size and row["mtime"] == source.mtime


def _index_file(root: Path, source: SourceFile, row: dict[str, Any] | None) -> _FileResult:
    try:
        data = read_regular(root / source.path)  # swapped for a FIFO since the walk: never block on it
    except OSError:
        return _FileResult(source, "", "unreadable")
    sha = content_hash(data)
    if row and row["sha"] == sha:
        return _FileResult(source, sha, row["status"], language=row["language"], previous=row)
    text, reason = indexable_text(data, source.path)
    if text is None:
        return _FileResult(source, sha, reason or "not_utf8")
    parsed = parse_file(source.path, text)
    return _FileResult(source, sha, INDEXED, parsed.chunks, parsed.symbols, parsed.language)


def content_hash(data: bytes) -> str:
    """The key an unchanged file is recognised by (mtimes lie after checkouts and copies)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _write(store: IndexStore, results: list[_FileResult]) -> None:
    reparsed = [r for r in results if r.previous is None]
    rows = [chunk_record(c) for r in reparsed for c in r.chunks]
    store.replace_content([r.source.path for r in reparsed], rows, [s for r in reparsed for s in r.symbols])
    store.replace_files([r.source.path for r in results], [_file_row(r) for r in results])


def chunk_record(chunk: Chunk) -> dict[str, Any]:
    """The stored row: the chunk plus its three full-text fields and the key of its vector. The text field is the
    words as written (docs, comments, strings); the split parts of identifiers are in the code field."""
    header = " ".join(split_identifier(chunk.symbol.replace(".", "_"))) if chunk.symbol else ""
    text = f"{chunk.path}\n{header}\n{chunk.context}\n{chunk.text}"
    if chunk.language in PROSE_LANGUAGES:  # prose has no identifiers and is not embedded
        return chunk_row(chunk, text, chunk_names(chunk), "", "")
    code = f"{chunk.path}\n{header}\n{code_words(without_doc(chunk.text, chunk.doc))}"
    key = content_hash(embed_text(chunk).encode("utf-8", "surrogatepass"))
    return chunk_row(chunk, text, chunk_names(chunk), code, key)


def chunk_names(chunk: Chunk) -> str:
    """What the definition is called and what it takes: its name and signature identifiers, whole and split.
    Searched as a field of its own, so a query naming a function or its parameters is not drowned by body text."""
    if not chunk.symbol:
        return ""
    return identifier_words(f"{chunk.symbol.replace('.', ' ')} {chunk.signature}")


def _file_row(result: _FileResult) -> dict[str, Any]:
    if result.previous is not None:
        return {**result.previous, "mtime": result.source.mtime}
    return {"path": result.source.path, "sha": result.sha, "size": result.source.size,
            "mtime": result.source.mtime, "language": result.language, "status": result.status,
            "chunks": len(result.chunks), "tokens": sum(c.tokens for c in result.chunks)}


def _fill_counts(store: IndexStore, summary: IndexSummary, settings: Settings) -> None:
    summary.chunks = store.table("chunks").count_rows()
    summary.symbols = store.table("symbols").count_rows()
    summary.skipped = store.skip_counts()
    summary.vectors_pending = count_pending_embeddings(store) if settings.embeddings else 0


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
