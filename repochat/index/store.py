"""The on-disk index: LanceDB tables for chunks, symbols, files and vectors, under a versioned folder.

Crash safety comes from write order: a file's chunks and symbols are replaced first and its row in `files` (with the
content hash) last, so an interrupted run leaves files whose hash was not recorded, which the next run redoes.
Writers take the index lock (lock.py) first; readers need none, since they read a published snapshot of versions.
Every LanceDB call goes through a guard that turns its errors (a truncated data file, a deleted index, an unwritable
folder) into one-line IndexStoreErrors (lance_errors.py); probing for damage, repair and compaction are upkeep.py's.
The folder may be a prefix in an S3 bucket (location.py): the tables and meta.json are then both there. What the
tables hold is schema.py's, meta.json (and the snapshot in it) meta.py's, and the whole-table reads kept in memory
table_views.py's.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

os.environ.setdefault("LANCEDB_LOG", "error")  # lance's Rust warnings (deprecations, "creating dataset") are noise
import pyarrow as pa  # noqa: E402
from lancedb.index import FTS  # noqa: E402  (imports lancedb, after LANCEDB_LOG is set)

from ..errors import IndexStoreError, IndexMissing
from ..records import Symbol
from .lance_api import Table
from .lance_errors import LANCE_ERRORS, IndexDamaged, detail, guarded_table, writing
from .location import (IndexDir, IndexUnreachable, ObjectFolder, access_problem, connect, in_bucket,
                       remove_tree)
from .meta import META_FILE, pinned_version, read_meta, record_snapshot, write_meta
from .schema import (CHUNKS, CONTENT_TABLES, FILES, FOLDER, FTS_COLUMNS, FTS_CONFIG, SCHEMA_VERSION, SNAPSHOT_TABLES,
                     SYMBOLS, sql_quote)
from .table_views import (DIRECTORY_CACHE, VECTOR_CACHE, ChunkDirectory, cached, load_chunk_directory,
                          load_vector_matrix)

if TYPE_CHECKING:
    from lancedb.db import DBConnection
    from lancedb.table import Table as LanceTable

_IN_BATCH = 400  # paths per `path IN (...)` filter
T = TypeVar("T")


class IndexStore:
    """One repository's index. `open` gives a reader pinned to the last complete update (a snapshot of table
    versions), so a query never sees half of an update in progress; `create_or_open` gives the writer."""

    def __init__(self, path: IndexDir, db: DBConnection, meta: dict[str, Any], pinned: bool = False) -> None:
        self.path = path
        self.meta = meta
        self._db = db
        self._pinned = pinned
        self._tables: dict[str, Table] = {}

    # --- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, index_dir: IndexDir, pinned: bool = True) -> "IndexStore":
        """An existing index, or IndexMissing / IndexStoreError with what to do about it."""
        path = index_dir / FOLDER
        if not (path / META_FILE).is_file():
            if index_dir.is_dir() and any(p.name.startswith("index-v") for p in index_dir.iterdir()):
                raise IndexMissing("the index was built by another repochat version; run `repochat index`")
            raise IndexMissing("no index yet; run `repochat index` first")
        try:
            meta = read_meta(path)
            db = connect(path / "db")
        except (ValueError, OSError, RuntimeError) as exc:
            raise IndexDamaged(path, detail(exc)) from exc
        store = cls(path, db, meta, pinned)
        for name in SNAPSHOT_TABLES:
            store.table(name)
        return store

    def writer(self) -> "IndexStore":
        """This index opened for writing (at the latest table versions), or self when it already is."""
        return IndexStore.open(self.path.parent, pinned=False) if self._pinned else self

    def refresh(self) -> None:
        """Catch up with what other writers did since this writer opened (call it holding the index lock): an
        open LanceDB table keeps the version it was opened at, and meta.json may have moved on."""
        try:
            self.meta = read_meta(self.path)
        except (ValueError, OSError) as exc:
            raise IndexDamaged(self.path, detail(exc)) from exc
        self._tables.clear()

    @classmethod
    def create_or_open(cls, index_dir: IndexDir, embedder_id: str) -> tuple["IndexStore", str]:
        """Open for writing (call it holding the index lock); builds from scratch when missing, unreadable or
        incompatible, and repairs damaged tables; the notice says what was done."""
        try:
            store = cls.open(index_dir, pinned=False)
        except IndexUnreachable:  # the store is down or refuses us: nothing to rebuild
            raise
        except IndexMissing:
            return cls._create(index_dir, embedder_id), "new index"
        except IndexDamaged as exc:
            return cls._create(index_dir, embedder_id), f"rebuilt: the index was damaged ({exc.detail})"
        except IndexStoreError as exc:
            return cls._create(index_dir, embedder_id), f"rebuilt: {exc}"
        from .upkeep import damage, repair  # upkeep works on an open store, and so imports this module
        notice = repair(store, damage(store))
        if store.meta.get("embedder") != embedder_id:
            store.drop_vectors(embedder_id)
            return store, notice or f"embedding model changed to {embedder_id}: vectors will be recomputed"
        return store, notice

    @staticmethod
    def remove(index_dir: IndexDir) -> None:
        for old in index_dir.glob("index-v*") if index_dir.is_dir() else ():
            remove_tree(old)

    @classmethod
    def _create(cls, index_dir: IndexDir, embedder_id: str) -> "IndexStore":
        path = index_dir / FOLDER
        cls.remove(index_dir)  # this and other schema versions: unreadable by this one
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not in_bucket(index_dir):  # a bucket is in no work tree
                (index_dir / ".gitignore").write_text("# the repochat index: never committed\n*\n", encoding="utf-8")
        except OSError as exc:
            raise IndexStoreError(f"cannot write the index at {index_dir}: {detail(exc)}") from exc
        meta = {"schema": SCHEMA_VERSION, "embedder": embedder_id, "generation": uuid.uuid4().hex}
        store = cls(path, writing(path, lambda: connect(path / "db")), meta)
        store._create_tables(CONTENT_TABLES)
        store.write_meta()
        return store

    def _create_tables(self, schemas: dict[str, pa.Schema]) -> None:
        for name, schema in schemas.items():
            self._tables.pop(name, None)
            writing(self.path, lambda: self._db.create_table(name, schema=schema, mode="overwrite"))

    def write_meta(self) -> None:
        write_meta(self.path, self.meta)

    def table(self, name: str) -> Table:
        if name not in self._tables:
            def opened() -> LanceTable:
                table = self._db.open_table(name)
                version = pinned_version(self.meta, name) if self._pinned else None
                if version:
                    table.checkout(version)
                return table
            try:
                self._tables[name] = guarded_table(self._guard(opened), self._guard)
            except ValueError as exc:  # LanceDB's "table not found": its folder is gone
                raise self.damaged(exc) from exc
        return self._tables[name]

    def publish_snapshot(self) -> None:
        """Record the table versions of a complete update: what readers opened from now on will see."""
        names = SNAPSHOT_TABLES + (("vectors",) if "vectors" in self.table_names() else ())
        record_snapshot(self.meta, {name: self.table(name).version for name in names})
        self.write_meta()

    def reset_content(self) -> None:
        """Drop the content tables and create them empty, and forget the snapshot: the next update parses every
        file again (vectors are kept, keyed by content)."""
        present = self.table_names()
        for name in CONTENT_TABLES:
            if name in present:
                self._guard(lambda: self._db.drop_table(name))
        self._create_tables(CONTENT_TABLES)
        self.meta.pop("snapshot", None)

    # --- errors --------------------------------------------------------------------------------------------
    def damaged(self, exc: BaseException) -> IndexStoreError:
        """The one-line error for a failed LanceDB call. A reader whose snapshot was replaced (and its old
        versions cleaned up) meanwhile is told to try again rather than to repair a healthy index."""
        if self._pinned and self._snapshot_moved():
            return IndexStoreError("the index was updated while it was being read; run the command again")
        problem = access_problem(self.path, exc) if isinstance(self.path, ObjectFolder) else None
        if problem:  # the store is down or refuses us: not damage to repair
            return problem
        return IndexDamaged(self.path, detail(exc))

    def _snapshot_moved(self) -> bool:
        try:
            return read_meta(self.path).get("snapshot") != self.meta.get("snapshot")
        except (ValueError, OSError):
            return False

    def _guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except LANCE_ERRORS as exc:
            raise self.damaged(exc) from exc

    # --- reading -------------------------------------------------------------------------------------------
    def column(self, table: str, name: str, where: str | None = None) -> list[Any]:
        query = self.table(table).search().select([name]).limit(None)
        if where:
            query = query.where(where)
        return query.to_arrow().column(0).to_pylist()

    # --- files ---------------------------------------------------------------------------------------------
    def file_rows(self) -> dict[str, dict[str, Any]]:
        rows = self.table("files").to_arrow().to_pylist()
        return {row["path"]: row for row in rows}

    def replace_files(self, paths: Iterable[str], rows: list[dict[str, Any]]) -> None:
        self._delete_paths("files", list(paths))
        if rows:
            self.table("files").add(pa.Table.from_pylist(rows, schema=FILES))

    def save_skipped(self, skipped: dict[str, list[str]]) -> None:
        """Files the walker left out by path (ignored, too large, secret, ...), for `repochat status`."""
        self.meta["skipped"] = {reason: sorted(paths) for reason, paths in skipped.items()}
        self.write_meta()

    def skip_counts(self) -> dict[str, int]:
        """Every file left out, by reason: by path (walker) and by content (binary, secret, ...)."""
        counts = {reason: len(paths) for reason, paths in self.meta.get("skipped", {}).items()}
        for status in self.column("files", "status", where="status != 'indexed'"):
            counts[status] = counts.get(status, 0) + 1
        return counts

    # --- chunks and symbols --------------------------------------------------------------------------------
    def replace_content(self, paths: list[str], chunks: list[dict[str, Any]], symbols: list[Symbol]) -> None:
        """Drop everything stored for paths, then store the new chunks and symbols."""
        for name in ("chunks", "symbols"):
            self._delete_paths(name, paths)
        if chunks:
            self.table("chunks").add(pa.Table.from_pylist(chunks, schema=CHUNKS))
        if symbols:
            self.table("symbols").add(pa.Table.from_pylist([vars(s) for s in symbols], schema=SYMBOLS))

    def _delete_paths(self, name: str, paths: list[str]) -> None:
        table = self.table(name)
        for start in range(0, len(paths), _IN_BATCH):
            batch = paths[start:start + _IN_BATCH]
            table.delete(f"path IN ({', '.join(sql_quote(p) for p in batch)})")

    def ensure_fts(self, force: bool = False) -> None:
        """Build the full-text index when missing or when many rows are not in it yet.

        Rows added after the build are still found (LanceDB searches them flat), so small updates skip the rebuild.
        """
        table = self.table("chunks")
        if not table.count_rows():
            return
        stale = [column for column in FTS_COLUMNS if force or self._unindexed(table, column) > 2000]
        # LanceDB builds an index without the GIL: the columns' builds run side by side.
        with ThreadPoolExecutor(max_workers=len(FTS_COLUMNS), thread_name_prefix="repochat-fts") as pool:
            list(pool.map(lambda column: table.create_index(column, config=FTS(**FTS_CONFIG), replace=True), stale))

    @staticmethod
    def _unindexed(table: Table, column: str) -> int:
        try:
            stats = table.index_stats(f"{column}_idx")
        except (ValueError, IndexStoreError):  # no such index, or one that cannot be read: build it
            stats = None
        return int(stats.num_unindexed_rows) if stats else 1 << 30

    # --- vectors -------------------------------------------------------------------------------------------
    def vector_keys(self) -> set[str]:
        if "vectors" not in self.table_names():
            return set()
        return set(self.column("vectors", "embed_key"))

    def stored_vector_keys(self, keys: list[str]) -> set[str]:
        """Those of ``keys`` that have a vector: a filtered read, cheap when keys are few and the vectors many."""
        if not keys or "vectors" not in self.table_names():
            return set()
        found: set[str] = set()
        for start in range(0, len(keys), _IN_BATCH):
            batch = keys[start:start + _IN_BATCH]
            found.update(self.column("vectors", "embed_key", f"embed_key IN ({', '.join(map(sql_quote, batch))})"))
        return found

    def add_vectors(self, keys: list[str], vectors: Any) -> None:
        data = pa.table({"embed_key": pa.array(keys, pa.string()),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)),
                                                                     vectors.shape[1])})
        if "vectors" not in self.table_names():
            self._tables["vectors"] = guarded_table(
                writing(self.path, lambda: self._db.create_table("vectors", data=data)), self._guard)
        else:
            self.table("vectors").add(data)

    def drop_vectors(self, embedder_id: str) -> None:
        if "vectors" in self.table_names():
            self._guard(lambda: self._db.drop_table("vectors"))
            self._tables.pop("vectors", None)
        self.meta["embedder"] = embedder_id
        self.write_meta()

    def vector_matrix(self) -> tuple[list[str], Any]:
        """All vectors as (keys, float32 matrix), cached per table version: a brute-force dot product over tens of
        thousands of 384-d vectors takes a few milliseconds, several times less than a LanceDB flat search."""
        return self.cached_per_version(VECTOR_CACHE, "vectors", load_vector_matrix)

    def chunk_directory(self) -> ChunkDirectory:
        """Where every chunk is, by embed key, defined name and path, cached per table version: a vector hit, a name
        the query mentions or a definition's line becomes a chunk without a query (a filtered scan costs more than a
        whole search)."""
        return self.cached_per_version(DIRECTORY_CACHE, "chunks", load_chunk_directory)

    def cached_per_version(self, cache: dict[str, Any], name: str, load: Callable[[Table], T]) -> T:
        """``load(table)`` of table ``name``, kept in ``cache`` (one entry) until the index or the version read
        changes (a server asks the same index many times)."""
        table = self.table(name)
        key = (str(self.path), pinned_version(self.meta, name) if self._pinned else table.version)
        return cached(cache, key, lambda: load(table))

    def has_vectors(self) -> bool:
        return self.has_table("vectors") and self.table("vectors").count_rows() > 0

    def has_table(self, name: str) -> bool:
        return name in self.table_names()

    def table_names(self) -> list[str]:
        return list(self._guard(lambda: self._db.list_tables().tables))

