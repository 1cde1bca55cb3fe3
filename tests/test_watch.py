"""The live index: a real watchdog observer over a real git repository, real LanceDB, real tree-sitter."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from repo_support import git
from repochat.config import Settings, load_settings
from repochat.index.store import IndexStore
from repochat.repo.walk import ignored_folder
from repochat.retrieve.symbols import find_symbols
from repochat.live.watch import IndexGate, IndexWatcher

SETTLE_S = 20.0  # generous: other test processes share the two cores


def _settings(root: Path) -> Settings:
    return load_settings(root, {"embeddings": False}, environ={})


@pytest.fixture
def watched(make_repo: Callable[..., Path]) -> Iterator[Callable[..., IndexWatcher]]:
    started: list[IndexWatcher] = []

    def start(files: dict[str, str], **options: float) -> IndexWatcher:
        root = make_repo(files)
        watcher = IndexWatcher(root, _settings(root), **options).start()  # type: ignore[arg-type]
        started.append(watcher)
        assert watcher.wait_idle(SETTLE_S), "the first update did not finish"
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def _definitions(watcher: IndexWatcher, name: str) -> list[str]:
    with watcher.gate.read():
        store = IndexStore.open(watcher.settings.index_path(watcher.root))
        return [hit.path for hit in find_symbols(store, name, role="definition")]


def _eventually(check: Callable[[], bool], timeout: float = SETTLE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_edits_additions_and_deletions_reach_the_index(watched: Callable[..., IndexWatcher]) -> None:
    watcher = watched({"app/core.py": "def alpha_handler():\n    return 1\n"})
    assert _definitions(watcher, "alpha_handler") == ["app/core.py"]

    (watcher.root / "app/core.py").write_text("def beta_processor():\n    return 2\n", encoding="utf-8")
    (watcher.root / "app/extra.py").write_text("class GammaStore:\n    pass\n", encoding="utf-8")
    assert _eventually(lambda: _definitions(watcher, "beta_processor") == ["app/core.py"])
    assert _eventually(lambda: _definitions(watcher, "GammaStore") == ["app/extra.py"])
    assert _definitions(watcher, "alpha_handler") == []

    (watcher.root / "app/extra.py").unlink()
    assert _eventually(lambda: _definitions(watcher, "GammaStore") == [])


def test_a_burst_of_changes_is_one_update(watched: Callable[..., IndexWatcher]) -> None:
    watcher = watched({"README.md": "# demo\n"}, debounce=1.5)
    for number in range(40):  # like a formatter rewriting a whole package
        (watcher.root / f"pkg/mod_{number}.py").parent.mkdir(exist_ok=True)
        (watcher.root / f"pkg/mod_{number}.py").write_text(f"def func_{number}():\n    pass\n", encoding="utf-8")
    deadline = time.monotonic() + SETTLE_S  # events arrive asynchronously: wait for the update they cause ...
    while watcher.state.updates < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # ... then longer than the debounce, so that a second update for the same burst would show
    assert watcher.wait_idle(SETTLE_S)
    assert watcher.state.updates == 2, f"expected the initial update plus one, got {watcher.state.updates}"
    assert all(_definitions(watcher, f"func_{n}") == [f"pkg/mod_{n}.py"] for n in range(40))


def test_its_own_index_writes_and_git_metadata_do_not_trigger_updates(
        watched: Callable[..., IndexWatcher]) -> None:
    watcher = watched({"lib.py": "def steady():\n    pass\n"})
    git(watcher.root, "commit", "-q", "--allow-empty", "-m", "only .git changes")
    time.sleep(2.5)  # several debounce periods: an update loop on .repochat/ writes would show by now
    assert watcher.wait_idle(SETTLE_S)
    assert watcher.state.updates == 1, watcher.state.changed_paths


def _inotify_inodes() -> set[int]:
    """Inodes this process holds inotify watches on, as the kernel lists them (Linux /proc)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:inotify":
                continue
            info = Path(f"/proc/self/fdinfo/{fd.name}").read_text()
        except OSError:  # closed meanwhile
            continue
        inodes |= {int(match, 16) for match in re.findall(r"^inotify wd:\S+ ino:([0-9a-f]+)", info, re.MULTILINE)}
    return inodes


def test_git_metadata_and_the_index_folder_are_not_watched(watched: Callable[..., IndexWatcher]) -> None:
    watcher = watched({"src/app.py": "def app():\n    pass\n", "docs/guide.md": "# guide\n", "setup.py": "x = 1\n"})
    root = watcher.root
    watches = {(Path(emitter.watch.path), emitter.watch.is_recursive) for emitter in watcher.observer.emitters}
    assert watches == {(root, False), (root / "src", True), (root / "docs", True)}
    assert (root / ".git" / "objects").is_dir() and (root / ".repochat").is_dir()
    if sys.platform == "linux":  # what the kernel watches: no folder of .git/ or .repochat/, but the work tree's
        metadata = {path.stat().st_ino for top in (".git", ".repochat")
                    for path in [root / top, *(root / top).rglob("*")] if path.is_dir()}
        inotify = _inotify_inodes()
        assert {(root / "src").stat().st_ino, root.stat().st_ino} <= inotify
        assert not metadata & inotify, "a folder of .git/ or .repochat/ is watched"


def test_ignored_folders_are_not_watched_unless_they_hold_tracked_files(
        make_repo: Callable[..., Path], watched: Callable[..., IndexWatcher]) -> None:
    files = {".gitignore": "node_modules/\nbuild/\n", ".repochatignore": "vendor/\n", "app.py": "x = 1\n",
             "node_modules/pkg/index.js": "module.exports = 1;\n", "build/out.txt": "built\n",
             "vendor/lib.py": "y = 2\n", "src/main.py": "z = 3\n"}
    watcher = watched(files)
    root = watcher.root
    assert {Path(e.watch.path) for e in watcher.observer.emitters} == {root, root / "src"}
    # A file tracked inside an ignored folder is indexed, so its folder is watched.
    tracked = make_repo({".gitignore": "build/\n", "build/keep.py": "k = 1\n"}, commit=False)
    git(tracked, "add", "-f", ".gitignore", "build/keep.py")
    assert not ignored_folder(tracked, "build") and ignored_folder(root, "build") and ignored_folder(root, "vendor")
    plain = make_repo({".gitignore": "dist/\n", "dist/a.js": "a\n"}, use_git=False)
    assert ignored_folder(plain, "dist") and not ignored_folder(plain, "src")


def test_a_top_level_folder_created_while_watching_gets_its_own_watch(
        watched: Callable[..., IndexWatcher]) -> None:
    watcher = watched({"main.py": "def main():\n    pass\n"})
    (watcher.root / "plugins").mkdir()
    (watcher.root / "plugins/first.py").write_text("def first_plugin():\n    pass\n", encoding="utf-8")
    assert _eventually(lambda: _definitions(watcher, "first_plugin") == ["plugins/first.py"])
    assert watcher.wait_idle(SETTLE_S)
    # An edit inside the new folder, long after it appeared, reaches the index only through the folder's own watch.
    (watcher.root / "plugins/first.py").write_text("def renamed_plugin():\n    pass\n", encoding="utf-8")
    assert _eventually(lambda: _definitions(watcher, "renamed_plugin") == ["plugins/first.py"])
    shutil.rmtree(watcher.root / "plugins")
    assert _eventually(lambda: (watcher.root / "plugins", True) not in
                       {(Path(e.watch.path), e.watch.is_recursive) for e in watcher.observer.emitters})
    assert _eventually(lambda: _definitions(watcher, "renamed_plugin") == [])


def test_queries_during_an_update_see_the_old_or_the_new_index_never_a_mix(
        watched: Callable[..., IndexWatcher]) -> None:
    """A query reads several tables; each read must come from the same version of the index. The reader takes no
    gate: the published snapshot alone must keep it consistent (IndexStore.open pins it), as for `repochat search`
    or a review while `repochat watch` updates the index in another process."""
    versions = [frozenset(f"{tag}_function_{n}" for n in range(count)) for tag, count in (("old", 300), ("new", 200))]
    source = ["".join(f"def {name}():\n    pass\n" for name in sorted(names)) for names in versions]
    consistent = {(versions[i], len(source[i].encode())) for i in (0, 1)}
    watcher = watched({"big.py": source[0]})
    seen: list[tuple[frozenset[str], int]] = []
    stop = threading.Event()

    def read_repeatedly() -> None:
        while not stop.is_set():
            store = IndexStore.open(watcher.settings.index_path(watcher.root))  # a fresh handle sees new versions
            names = store.column("symbols", "name", where="path = 'big.py' AND role = 'definition'")
            sizes = store.column("files", "size", where="path = 'big.py'")
            seen.append((frozenset(names), sizes[0] if sizes else -1))

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    try:
        for round_ in range(1, 5):  # several updates, each replacing every definition in the file
            (watcher.root / "big.py").write_text(source[round_ % 2], encoding="utf-8")
            assert _eventually(lambda: bool(seen) and seen[-1][0] == versions[round_ % 2])
    finally:
        stop.set()
        reader.join()
    mixed = [(len(names), size) for names, size in seen if (names, size) not in consistent]
    assert not mixed, f"{len(mixed)} of {len(seen)} reads saw a partial index: (definitions, size) {mixed[:3]}"


def test_the_gate_lets_readers_share_and_keeps_writers_alone() -> None:
    gate = IndexGate()
    gate.open()
    entered = threading.Event()

    def reader() -> None:
        with gate.read():
            entered.set()

    with gate.write():
        thread = threading.Thread(target=reader)
        thread.start()
        assert not entered.wait(0.3), "a reader got in while an update held the gate"
    assert entered.wait(5)
    thread.join()
    with gate.read(), gate.read():  # two readers at once do not block each other
        pass


def test_the_watch_command_reports_each_update_and_stops_on_sigterm(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"src/app.py": "def first():\n    pass\n"})
    command = [sys.executable, "-m", "repochat", "watch", "-C", str(root), "--json",
               "--no-embed"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        initial = json.loads(process.stdout.readline())
        assert initial["parsed"] == 1 and initial["files"] == 1
        (root / "src/app.py").write_text("def second():\n    pass\n", encoding="utf-8")
        (root / "src/more.py").write_text("def third():\n    pass\n", encoding="utf-8")
        update = json.loads(process.stdout.readline())
        assert (update["parsed"], update["files"]) == (2, 2), update
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
