"""Indexing a real repository into LanceDB on disk: contents, incremental updates, interruption, corruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from repochat.config import load_settings
from repochat.errors import IndexStoreError, IndexMissing
from repochat.index.indexer import update_index
from repochat.index.schema import FOLDER
from repochat.index.store import IndexStore

from repo_support import git, write_files

FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAfakeSECRETmaterial\n-----END OPENSSH PRIVATE KEY-----\n"
SOURCES = {
    "pkg/geometry.py": "class Circle:\n    def area(self):\n        return 3.14159 * self.radius ** 2\n\n\n"
                       "def total_area(shapes):\n    return sum(s.area() for s in shapes)\n",
    "pkg/util.go": "package pkg\n\n// Clamp limits v to [lo, hi].\nfunc Clamp(v, lo, hi int) int {\n"
                   "\tif v < lo {\n\t\treturn lo\n\t}\n\tif v > hi {\n\t\treturn hi\n\t}\n\treturn v\n}\n",
    "docs/guide.md": "# Guide\n\nHow to compute the total area.\n\n## Details\n\nShapes have an area method.\n",
}


def settings_for(root: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return load_settings(root, {"embeddings": False, **overrides})


def rows(root: Path, table: str) -> list[dict]:  # type: ignore[type-arg]
    store = IndexStore.open(settings_for(root).index_path(root))
    return store.table(table).to_arrow().to_pylist()


def assert_consistent(root: Path) -> None:
    """One row per file, no duplicate chunks, and chunks exactly for the files recorded as indexed."""
    files = rows(root, "files")
    chunks = rows(root, "chunks")
    assert len({f["path"] for f in files}) == len(files)
    duplicates = [k for k, n in Counter((c["path"], c["start_line"], c["end_line"]) for c in chunks).items() if n > 1]
    assert duplicates == []
    indexed = {f["path"] for f in files if f["status"] == "indexed" and f["chunks"]}
    assert {c["path"] for c in chunks} == indexed
    for f in files:
        assert f["chunks"] == sum(1 for c in chunks if c["path"] == f["path"]), f["path"]


def test_index_stores_chunks_symbols_and_files(make_repo) -> None:
    root = make_repo(SOURCES)
    summary = update_index(root, settings_for(root))
    assert summary.files == 3 and summary.parsed == 3
    chunks = rows(root, "chunks")
    by_symbol = {c["symbol"]: c for c in chunks}
    assert by_symbol["total_area"]["start_line"] == 6 and by_symbol["total_area"]["path"] == "pkg/geometry.py"
    assert by_symbol["Clamp"]["language"] == "go"
    assert all(c["tokens"] > 0 for c in chunks)
    symbols = rows(root, "symbols")
    assert {"path": "pkg/geometry.py", "name": "area", "role": "reference", "scope": "total_area"}.items() <= \
        next(s for s in symbols if s["name"] == "area" and s["role"] == "reference").items()
    assert_consistent(root)


def test_fake_secrets_never_reach_the_index(make_repo) -> None:
    root = make_repo({**SOURCES, ".env": "DB_PASSWORD=hunter2-SECRETVALUE\n", "deploy/id_ed25519": FAKE_KEY,
                      "config/settings.py": "TOKEN = 'AKIAIOSFODNN7EXAMPLE'\nDEBUG = True\n",
                      "notes/key.txt": FAKE_KEY})
    summary = update_index(root, settings_for(root))
    assert summary.skipped["secret"] == 4
    everything = json.dumps(rows(root, "chunks") + rows(root, "symbols"))
    for secret in ("hunter2", "SECRETmaterial", "AKIAIOSFODNN7EXAMPLE", "PRIVATE KEY"):
        assert secret not in everything


def test_reindex_touches_only_changed_files_and_removes_deleted(make_repo) -> None:
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    before = {c["path"]: c for c in rows(root, "chunks") if c["path"] != "pkg/geometry.py"}

    write_files(root, {"pkg/geometry.py": SOURCES["pkg/geometry.py"] + "\n\ndef perimeter(c):\n    return 6.28 * c.r\n"})
    (root / "docs/guide.md").unlink()
    summary = update_index(root, settings)
    assert (summary.parsed, summary.unchanged, summary.deleted) == (1, 1, 1)
    after = rows(root, "chunks")
    assert "perimeter" in {c["symbol"] for c in after}
    assert "docs/guide.md" not in {c["path"] for c in after}
    assert {c["path"]: c for c in after if c["path"] == "pkg/util.go"} == \
        {k: v for k, v in before.items() if k == "pkg/util.go"}
    assert_consistent(root)


def test_touch_without_content_change_parses_nothing(make_repo) -> None:
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    os.utime(root / "pkg/util.go", (time.time() + 10, time.time() + 10))
    summary = update_index(root, settings)
    assert summary.parsed == 0
    assert_consistent(root)


def test_kill_9_mid_run_then_rerun_gives_a_complete_index(make_repo) -> None:
    files = {f"mod{i:04d}/file.py": f"def function_{i}(x):\n    return x * {i}\n\n\nclass Thing{i}:\n"
                                    f"    def method(self):\n        return function_{i}(self)\n" for i in range(4000)}
    root = make_repo(files, use_git=False)
    cmd = [sys.executable, "-m", "repochat", "index", str(root), "--no-embed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunk_data = root / ".repochat" / FOLDER / "db" / "chunks.lance" / "data"
    deadline = time.time() + 120
    while not (chunk_data.is_dir() and any(chunk_data.iterdir())) and time.time() < deadline:
        time.sleep(0.01)  # until the first batch of chunks is on disk: later batches are still to come
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be interrupted"
    summary = update_index(root, settings_for(root))
    assert summary.files == 4000
    assert_consistent(root)
    assert len({c["path"] for c in rows(root, "chunks")}) == 4000


def test_corrupt_index_is_reported_then_rebuilt(make_repo) -> None:
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    for stored in (root / ".repochat" / FOLDER / "db").rglob("*"):
        if stored.is_file():
            stored.write_bytes(b"garbage")
    with pytest.raises(IndexStoreError, match="corrupt"):
        IndexStore.open(settings.index_path(root))
    summary = update_index(root, settings)
    assert summary.notice.startswith("rebuilt") and summary.parsed == 3
    assert_consistent(root)


def test_schema_version_change_rebuilds_cleanly(make_repo) -> None:
    root = make_repo(SOURCES)
    old = root / ".repochat" / "index-v0"
    old.mkdir(parents=True)
    (old / "meta.json").write_text('{"schema": 0}')
    with pytest.raises(IndexMissing, match="another repochat version"):
        IndexStore.open(settings_for(root).index_path(root))
    summary = update_index(root, settings_for(root))
    assert summary.notice == "new index" and not old.exists()


def test_empty_repository_indexes_to_nothing(make_repo) -> None:
    root = make_repo({})
    summary = update_index(root, settings_for(root))
    assert (summary.files, summary.chunks) == (0, 0)


def test_index_folder_ignores_itself_in_git(make_repo) -> None:
    root = make_repo(SOURCES)
    update_index(root, settings_for(root))
    git(root, "add", "-A")
    assert not [p for p in git(root, "diff", "--cached", "--name-only").split() if p.startswith(".repochat")]


def test_git_untracked_files_are_indexed_and_ignored_ones_not(make_repo) -> None:
    root = make_repo({**SOURCES, ".gitignore": "scratch/\n"})
    write_files(root, {"scratch/tmp.py": "def hidden():\n    pass\n", "pkg/extra.py": "def extra():\n    pass\n"})
    update_index(root, settings_for(root))
    paths = {c["path"] for c in rows(root, "chunks")}
    assert "pkg/extra.py" in paths and "scratch/tmp.py" not in paths
