"""The index under stress: two writers at once, damaged files, an unwritable folder, compaction under readers.

Everything runs on real LanceDB files: the damage is done to the files on disk, the writers are real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from repochat.cli.main import cli
from repochat.config import load_settings
from repochat.errors import IndexStoreError
from repochat.index import indexer, upkeep
from repochat.index.indexer import count_pending_embeddings, embed_pending, update_index
from repochat.index.lance_errors import IndexDamaged
from repochat.index.lock import WAIT_NOTICE, IndexBusy, index_write_lock
from repochat.index.schema import FOLDER
from repochat.index.store import IndexStore
from repochat.retrieve.excerpts import fresh_index
from repochat.retrieve.search import search
from repochat.retrieve.symbols import find_symbols

from repo_support import write_files
from test_index import SOURCES, assert_consistent, rows, settings_for

DB = Path(".repochat") / FOLDER / "db"


def many_files(count: int) -> dict[str, str]:
    return {f"pkg{i % 10}/mod{i:04d}.py": f"def function_{i}(x):\n    return x * {i}\n\n\nclass Thing{i}:\n"
                                          f"    def method(self):\n        return function_{i}(self)\n"
            for i in range(count)}


def cli_run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def repochat_process(*args: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "repochat", *args], text=True, **popen)  # type: ignore[call-overload]


def assert_one_line_telling_to_index(result: Result) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("repochat: error: the index at") and "run `repochat index`" in lines[0], lines[0]
    assert "Traceback" not in result.output and "internal error" not in result.output


# --- damage ------------------------------------------------------------------------------------------------------
def truncate_chunk_data(root: Path) -> None:
    data = max((root / DB / "chunks.lance" / "data").iterdir(), key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)


def delete_fts_index(root: Path) -> None:
    indices = root / DB / "chunks.lance" / "_indices"
    assert any(indices.iterdir())
    for folder in indices.iterdir():
        shutil.rmtree(folder)


def delete_files_data(root: Path) -> None:
    for data in (root / DB / "files.lance" / "data").iterdir():
        data.unlink()


def meta_not_an_object(root: Path) -> None:
    (root / ".repochat" / FOLDER / "meta.json").write_text("[]")


# damage -> (the commands that must fail with one line: the others may still work, as they do not read what broke)
DAMAGE = {
    "truncated chunks data file": (truncate_chunk_data, {"search", "status"}),
    "deleted full-text index": (delete_fts_index, {"search"}),
    "deleted files data file": (delete_files_data, {"status"}),
    "meta.json holding a list": (meta_not_an_object, {"search", "status"}),
}


@pytest.fixture(scope="module")
def indexed_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity") / "pristine"
    write_files(root, SOURCES)
    assert cli_run("index", str(root), "--no-embed").exit_code == 0
    return root


@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_is_one_line_and_index_repairs_it(kind: str, indexed_demo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(indexed_demo, root)
    damage, failing = DAMAGE[kind]
    damage(root)
    commands = {"search": ("search", "total area", "-C", str(root), "--mode", "fts"),
                "status": ("status", "-C", str(root), "--json")}
    for name, command in commands.items():
        result = cli_run(*command)
        if name in failing:
            assert_one_line_telling_to_index(result)
        else:
            assert result.exit_code == 0 and "Traceback" not in result.output, result.output

    repaired = cli_run("index", str(root), "--no-embed")
    assert repaired.exit_code == 0, repaired.output
    notices = [line for line in repaired.output.splitlines() if "damaged" in line]
    assert len(notices) == 1 and notices[0].startswith("rebuilt: the index was damaged ("), repaired.output

    found = cli_run(*commands["search"], "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["results"][0]["path"] == "pkg/geometry.py"
    status = cli_run(*commands["status"])
    assert status.exit_code == 0 and json.loads(status.output)["index"]["files"] == 3, status.output
    assert_consistent(root)


def test_damage_probe_finds_nothing_on_a_healthy_index(indexed_demo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(indexed_demo, root)
    summary = update_index(root, settings_for(root))
    assert summary.notice == "" and summary.parsed == 0


def test_a_writer_meeting_damage_gets_one_line_and_the_next_update_repairs(indexed_demo: Path,
                                                                           tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(indexed_demo, root)
    store = IndexStore.open(root / ".repochat", pinned=False)
    truncate_chunk_data(root)
    with pytest.raises(IndexDamaged, match="run `repochat index`"):  # a delete reads the path column
        store.replace_content(["pkg/geometry.py"], [], [])
    summary = update_index(root, settings_for(root))
    assert summary.notice.startswith("rebuilt: the index was damaged") and summary.parsed == 3
    assert_consistent(root)


# --- places that cannot be written -------------------------------------------------------------------------------
def test_index_folder_that_cannot_be_created_is_one_line(make_repo) -> None:
    root = make_repo(SOURCES)
    (root / ".repochat").write_text("a file where the index folder should be\n")  # fails for root too
    result = cli_run("index", str(root), "--no-embed")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"repochat: error: cannot write the index at {root / '.repochat'}")
    assert "Traceback" not in result.output


@pytest.fixture
def read_only_view(tmp_path: Path):  # type: ignore[no-untyped-def]
    """view(source) -> a read-only bind mount of source (skips where mounting is not allowed)."""
    mounted: list[Path] = []

    def view(source: Path) -> Path:
        target = tmp_path / f"read-only-{len(mounted)}"
        target.mkdir()
        for command in (["mount", "--bind", str(source), str(target)],
                        ["mount", "-o", "remount,ro,bind", str(target)]):
            if subprocess.run(command, capture_output=True).returncode != 0:
                subprocess.run(["umount", str(target)], capture_output=True)
                pytest.skip("cannot mount a read-only view here")
        mounted.append(target)
        return target

    yield view
    for target in mounted:
        subprocess.run(["umount", str(target)], check=True)


def test_a_read_only_repository_is_one_line_to_index_and_still_searchable(make_repo, read_only_view) -> None:
    indexed = make_repo(SOURCES)
    update_index(indexed, settings_for(indexed))
    for root, searchable in ((read_only_view(make_repo(SOURCES)), False), (read_only_view(indexed), True)):
        result = cli_run("index", str(root), "--no-embed")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip() == \
            f"repochat: error: cannot write the index at {root / '.repochat'}: Read-only file system"
        found = cli_run("search", "total area", "-C", str(root), "--json")
        assert found.exit_code == (0 if searchable else 1), found.output  # readers write nothing


def test_a_write_that_fails_on_a_readable_index_is_one_line_and_keeps_the_index(make_repo) -> None:
    root = make_repo(SOURCES)
    update_index(root, settings_for(root))
    transactions = root / DB / "chunks.lance" / "_transactions"
    shutil.rmtree(transactions)
    transactions.write_text("a file where LanceDB writes its transaction files\n")  # every commit fails, even for root
    write_files(root, {"pkg/geometry.py": SOURCES["pkg/geometry.py"] + "\n\ndef more():\n    pass\n"})
    result = cli_run("index", str(root), "--no-embed")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("repochat:")]
    assert len(lines) == 1 and lines[0].startswith(f"repochat: error: cannot write the index at {root / '.repochat'}")
    assert json.loads(cli_run("search", "total area", "-C", str(root), "--json").output)["results"]  # still there
    transactions.unlink()
    transactions.mkdir()
    summary = update_index(root, settings_for(root))
    assert summary.notice == "" and summary.parsed == 1
    assert_consistent(root)


def test_meta_writes_by_two_threads_never_collide(make_repo) -> None:
    root = make_repo(SOURCES)
    update_index(root, settings_for(root))
    stores = [IndexStore.open(root / ".repochat", pinned=False) for _ in range(2)]
    errors: list[BaseException] = []

    def write_many(store: IndexStore) -> None:
        try:
            for _ in range(200):
                store.publish_snapshot()  # a fixed temporary name made one writer's rename find it gone
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write_many, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not list((root / ".repochat" / FOLDER).glob("*.tmp"))
    assert isinstance(json.loads((root / ".repochat" / FOLDER / "meta.json").read_text()), dict)


# --- one writer at a time ----------------------------------------------------------------------------------------
def test_two_index_processes_at_once_leave_one_row_per_file(make_repo) -> None:
    root = make_repo(many_files(300), use_git=False)
    procs = [repochat_process("index", str(root), "--no-embed", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0 and "Traceback" not in err, err
    assert_consistent(root)
    files = rows(root, "files")
    assert len(files) == 300 and len(rows(root, "chunks")) == 600


def test_a_second_writer_waits_for_the_lock_and_then_indexes(make_repo) -> None:
    root = make_repo(SOURCES)
    with index_write_lock(root / ".repochat", on_wait=None):
        proc = repochat_process("index", str(root), "--no-embed", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the notice, printed once the process finds the lock taken
        assert WAIT_NOTICE in line, line
        time.sleep(0.5)
        assert proc.poll() is None and not (root / ".repochat" / FOLDER).exists()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "3 files" in out and len(rows(root, "files")) == 3


def test_kill_9_of_a_lock_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path\n"
         "from repochat.index.lock import index_write_lock\n"
         "with index_write_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(IndexBusy):
        with index_write_lock(tmp_path, wait=False):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with index_write_lock(tmp_path, wait=False):  # the OS dropped the lock with the process
        pass


def test_a_retrieval_refresh_skips_while_another_writer_holds_the_lock(make_repo) -> None:
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    write_files(root, {"pkg/late.py": "def arrived_late():\n    return 1\n"})
    taken, release = threading.Event(), threading.Event()

    def other_writer() -> None:  # another thread: the lock is re-entrant within one thread only
        with index_write_lock(root / ".repochat", on_wait=None):
            taken.set()
            release.wait(60)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        assert taken.wait(10)
        started = time.monotonic()
        store = fresh_index(root, settings)
        assert time.monotonic() - started < 10  # did not wait for the writer
        assert find_symbols(store, "arrived_late") == []  # the snapshot before the change
    finally:
        release.set()
        writer.join()
    assert [hit.path for hit in find_symbols(fresh_index(root, settings), "arrived_late", "definition")] == \
        ["pkg/late.py"]


def test_duplicate_rows_from_an_old_index_are_repaired(make_repo) -> None:
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    clean_symbols = len(rows(root, "symbols"))
    store = IndexStore.open(root / ".repochat", pinned=False)
    # What two unlocked writers left behind: every row of one file twice, a chunk of another twice.
    for name in ("files", "chunks", "symbols"):
        table = store.table(name)
        table.add(table.search().where("path = 'pkg/geometry.py'").limit(None).to_arrow())
    store.table("chunks").add(store.table("chunks").search().where("path = 'pkg/util.go'").limit(1).to_arrow())
    store.publish_snapshot()
    with pytest.raises(AssertionError):
        assert_consistent(root)

    summary = update_index(root, settings)
    assert summary.parsed == 2 and summary.deleted == 0
    assert_consistent(root)
    assert len(rows(root, "symbols")) == clean_symbols
    assert update_index(root, settings).parsed == 0  # and it stays repaired


# --- compaction ----------------------------------------------------------------------------------------------------
def test_compaction_cleans_old_versions_and_spares_the_snapshots_readers_use(make_repo, monkeypatch) -> None:
    monkeypatch.setattr(upkeep, "OPTIMIZE_AFTER_VERSIONS", 6)
    monkeypatch.setattr(upkeep, "KEEP_VERSIONS_FOR", timedelta(seconds=0.2))
    monkeypatch.setattr(upkeep, "COMPACTION_MARGIN", timedelta(seconds=0.1))
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    versions = root / DB / "chunks.lance" / "_versions"
    for number in range(12):
        write_files(root, {"pkg/edited.py": f"def edit_{number}(value):\n    return value + {number}\n"})
        reader = IndexStore.open(root / ".repochat")  # opened before the update: on the previous snapshot then
        update_index(root, settings)
        # The reader still sees its snapshot whole, full-text index included.
        assert [hit.path for hit in search(reader, "total area", mode="fts")][0] == "pkg/geometry.py"
        seen = {chunk["symbol"] for chunk in reader.table("chunks").to_arrow().to_pylist()}
        assert (f"edit_{number - 1}" in seen if number else "edit_0" not in seen)
        # Versions age in wall time: on a fast run a dozen updates fit in the retention window and none could go.
        time.sleep(0.1)
    meta = json.loads((root / ".repochat" / FOLDER / "meta.json").read_text())
    assert "chunks" in meta["optimized"]
    assert len(list(versions.iterdir())) < 12  # the 24 versions the edits wrote were cleaned up
    assert [hit.path for hit in search(IndexStore.open(root / ".repochat"), "edit_11", mode="fts")] == \
        ["pkg/edited.py"]
    assert_consistent(root)


def test_a_reader_whose_snapshot_was_cleaned_up_is_told_to_run_again(make_repo, monkeypatch) -> None:
    monkeypatch.setattr(upkeep, "OPTIMIZE_AFTER_VERSIONS", 1)
    monkeypatch.setattr(upkeep, "KEEP_VERSIONS_FOR", timedelta(0))
    monkeypatch.setattr(upkeep, "COMPACTION_MARGIN", timedelta(0))
    root = make_repo(SOURCES)
    settings = settings_for(root)
    update_index(root, settings)
    stale = IndexStore.open(root / ".repochat")
    for number in range(3):  # its versions are neither current nor previous now, and their files rewritten
        write_files(root, {"pkg/geometry.py": SOURCES["pkg/geometry.py"] + f"\n\ndef edit_{number}(c):\n    pass\n"})
        update_index(root, settings)
    with pytest.raises(IndexStoreError, match="updated while it was being read; run the command again"):
        stale.table("chunks").to_arrow()


def test_two_embedding_runs_at_once_store_each_vector_once(make_repo) -> None:
    root = make_repo(many_files(60), use_git=False)
    settings = load_settings(root, {"embeddings": True})
    summary = update_index(root, settings)
    assert summary.vectors_pending > 64  # several batches each
    store = IndexStore.open(root / ".repochat")
    done: list[int] = []
    runs = [threading.Thread(target=lambda: done.append(embed_pending(store, settings, on_wait=None)))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    keys = IndexStore.open(root / ".repochat").column("vectors", "embed_key")
    assert len(done) == 2 and len(keys) == len(set(keys)) == summary.vectors_pending
    assert count_pending_embeddings(IndexStore.open(root / ".repochat")) == 0


def test_an_embedding_run_overtaken_by_another_stores_no_vector_twice(make_repo, monkeypatch) -> None:
    # The interleaving the test above meets only by chance under load: while one run embeds its first batch,
    # another stores every pending vector. The first must then store none (it once stored its later batches
    # again: the vectors table's version had not moved since it last looked, at its first batch).
    root = make_repo(many_files(60), use_git=False)
    settings = load_settings(root, {"embeddings": True})
    summary = update_index(root, settings)
    assert summary.vectors_pending > 64  # several batches
    store = IndexStore.open(root / ".repochat")
    real_embedder = indexer.load_embedder
    overtaken: list[int] = []

    class OvertakenOnce:
        def __init__(self, name: str, threads: int = 0) -> None:
            self.model = real_embedder(name, threads)

        def embed(self, texts: list[str]) -> object:
            if not overtaken:
                overtaken.append(0)
                overtaken[0] = embed_pending(store, settings, on_wait=None)  # the other run, start to end
            return self.model.embed(texts)

    monkeypatch.setattr(indexer, "load_embedder", OvertakenOnce)
    embed_pending(store, settings, on_wait=None)
    keys = IndexStore.open(root / ".repochat").column("vectors", "embed_key")
    assert overtaken == [summary.vectors_pending]
    assert len(keys) == len(set(keys)) == summary.vectors_pending
