"""Keeping an open index healthy and small: finding damage (``damage``), repairing it (``repair``) and compacting
tables and cleaning up their old versions (``maintain``). Each takes a writer IndexStore; call them holding the index
lock. How the tables are read and written is store.py's.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from .lance_api import Table
from .lance_errors import IndexDamaged
from .schema import CONTENT_TABLES, FTS_COLUMNS
from .store import IndexStore

# A cheap column per table: reading it whole touches every data file (its footer and that column), so a truncated or
# missing file shows without reading the text.
PROBE_COLUMNS = {"files": "size", "chunks": "tokens", "symbols": "line", "vectors": "embed_key"}
FTS_PROBE_WORD = "repochat"
OPTIMIZE_AFTER_VERSIONS = 40  # versions written to a table since its last compaction (a small update writes 2 each)
# Old versions are kept this long after they were written: readers use the index for seconds (a search, an ask's
# retrieval), and the snapshots they pin are kept anyway (see ``maintain``).
KEEP_VERSIONS_FOR = timedelta(minutes=2)
# LanceDB compacts before it cleans up, in the same call, and measures versions' ages when the cleanup starts: a
# version computed to be kept must still be kept then (a 17 MB chunks table compacts in under a second).
COMPACTION_MARGIN = timedelta(minutes=1)


# --- damage ----------------------------------------------------------------------------------------------------
def damage(store: IndexStore) -> dict[str, str]:
    """What cannot be read, by table (and "fts" for the full-text index): each table's probe column is read
    whole and each full-text index answers a one-word query. Empty when all is well."""
    found: dict[str, str] = {}
    for name in [*CONTENT_TABLES, *(["vectors"] if store.has_table("vectors") else [])]:
        try:
            store.column(name, PROBE_COLUMNS[name])
        except IndexDamaged as exc:
            found[name] = exc.detail
    if "chunks" not in found:
        try:
            _probe_fts(store)
        except IndexDamaged as exc:
            found["fts"] = exc.detail
    return found


def _probe_fts(store: IndexStore) -> None:
    table = store.table("chunks")
    indexed = {column for config in table.list_indices() for column in config.columns}
    for column in FTS_COLUMNS:
        if column in indexed:
            table.search(FTS_PROBE_WORD, query_type="fts", fts_columns=column).select(["path"]).limit(1).to_arrow()


def repair(store: IndexStore, found: dict[str, str]) -> str:
    """Rebuild what ``damage`` found, the least that fixes it: the three content tables together (the next
    update parses every file again; vectors are kept, keyed by content), the vectors alone (recomputed), or
    just the full-text index. Returns the one notice for the user, or "" when nothing was damaged."""
    if not found:
        return ""
    if found.keys() & CONTENT_TABLES.keys():
        store.reset_content()
    if "vectors" in found:
        store.drop_vectors(store.meta.get("embedder", ""))
    if found.keys() == {"fts"}:
        store.ensure_fts(force=True)
    store.publish_snapshot()
    what = "; ".join(f"{name}: {why}" for name, why in sorted(found.items()))
    return f"rebuilt: the index was damaged ({what})"


# --- compaction --------------------------------------------------------------------------------------------------
def maintain(store: IndexStore) -> list[str]:
    """Compact each table written to OPTIMIZE_AFTER_VERSIONS times since its last compaction (small fragments
    merged, deletions applied, new rows added to the full-text index) and delete its old versions, keeping
    those of the current and the previous snapshot (a reader opened just before this update is on the previous
    one) and those written since. Call it after ``store.publish_snapshot``. Returns the tables compacted.

    A table is compacted at most once per KEEP_VERSIONS_FOR: compaction rewrites the table (LanceDB merges its
    large fragment with the small ones after it), and until the copy it replaced has aged out, compacting
    again would only add another copy."""
    done = store.meta.setdefault("optimized", {})
    compacted = []
    for name in store.table_names():
        table = store.table(name)
        last = done.get(name, {})
        if table.version - last.get("version", 0) < OPTIMIZE_AFTER_VERSIONS \
                or time.time() - last.get("at", 0.0) < KEEP_VERSIONS_FOR.total_seconds():
            continue
        table.optimize(cleanup_older_than=_retention(store, name, table))
        compacted.append(name)
    if compacted:
        store.publish_snapshot()  # readers from now on get the compacted versions
        done.update({name: {"version": store.table(name).version, "at": time.time()} for name in compacted})
        store.write_meta()
    return compacted


def _retention(store: IndexStore, name: str, table: Table) -> timedelta:
    """How far back versions of table ``name`` are kept: KEEP_VERSIONS_FOR, or back to the older of the
    versions in the current and the previous snapshot when that is further."""
    keep = {store.meta.get(key, {}).get(name) for key in ("snapshot", "previous_snapshot")} - {None}
    times = [v["timestamp"] for v in table.list_versions() if v["version"] in keep]
    if not times:
        return KEEP_VERSIONS_FOR
    oldest = min(times)
    age = datetime.now(oldest.tzinfo) - oldest  # LanceDB gives naive local times
    return max(KEEP_VERSIONS_FOR, age + COMPACTION_MARGIN)
