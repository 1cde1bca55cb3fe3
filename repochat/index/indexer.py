"""Build and update a repository's index incrementally: only files whose content hash changed are parsed again."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import tokens
from ..config import Settings
from ..records import Chunk, SourceFile, Symbol
from ..repo.filters import indexable_text
from ..repo.walk import walk_repository
from .embedder import embedder_id, load_embedder
from .identifiers import (
    code_words,
    identifier_words,
    split_identifier,
    without_doc,
    words_of_code,
)
from .parse import parse_file
from .store import IndexStore, chunk_row

Progress = Callable[[str, int, int], None]  # (stage, done, total)
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
    index_dir = settings.index_path(root)
    if rebuild:
        IndexStore.remove(index_dir)
    return IndexStore.create_or_open(index_dir, embedder_id(settings.embedding_model))


def update_index(root: Path, settings: Settings, progress: Progress | None = None,
                 rebuild: bool = False) -> IndexSummary:
    """Bring the index in line with the work tree. Safe to interrupt: the next run completes it."""
    started = time.perf_counter()
    tokens.preload()  # loads while the repository is walked
    store, notice = open_for_update(root, settings, rebuild)
    walk = walk_repository(root, settings)
    stored = store.file_rows()
    summary = IndexSummary(root=str(root), index_path=str(store.path), notice=notice, files=len(walk.files))
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
    gone = [path for path in stored if path not in walked]
    store.replace_content(gone, [], [])
    store.replace_files(gone, [])
    summary.deleted = len(gone)
    store.ensure_fts()
    store.save_skipped(walk.skipped)
    store.publish_snapshot()
    _fill_counts(store, summary, settings)
    summary.seconds = time.perf_counter() - started
    return summary


def embed_pending(store: IndexStore, settings: Settings, progress: Progress | None = None) -> int:
    """Compute vectors for chunks that have none yet (keyed by content, so unchanged code is never re-embedded)."""
    store = store.writer()
    pending = _pending_embeddings(store)
    if not pending:
        return 0
    embedder = load_embedder(settings.embedding_model, settings.threads)
    done = 0
    for number, batch in enumerate(_batches(sorted(pending.items()), EMBED_BATCH), 1):
        store.add_vectors([key for key, _ in batch], embedder.embed([text for _, text in batch]))
        done += len(batch)
        if progress:
            progress("embed", done, len(pending))
        if number % PUBLISH_EVERY_BATCHES == 0:
            store.publish_snapshot()  # vectors computed so far become visible to readers
    store.publish_snapshot()
    return done


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
    return bool(row) and row["size"] == source.size and row["mtime"] == source.mtime  # type: ignore[index]


def _index_file(root: Path, source: SourceFile, row: dict[str, Any] | None) -> _FileResult:
    try:
        data = (root / source.path).read_bytes()
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
