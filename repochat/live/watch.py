"""Keep a repository's index in step with its work tree while it is being edited.

A watchdog observer collects changed paths; a worker thread waits until the changes settle (``debounce`` seconds
without a new event, or at most ``max_wait`` after the first one) and then brings the index up to date with one
``update_index`` run, so a burst (a branch switch, a formatter run over the repository) costs one update. Vectors are
computed afterwards, in the same thread, and that work gives way as soon as new changes arrive.

Readers and the updater share an ``IndexGate``: an update holds it exclusively, so a query sees the index before the
update or after it, never half of it. Every index write, here as anywhere, first takes the index lock
(index/lock.py), which other processes (a manual `repochat index`, the hook) take too: the lock always before the
gate, so two threads never hold one each while waiting for the other. Vectors are written outside the gate (readers
pin a published snapshot; new vectors only become visible when one is published) but inside the lock.

The observer never descends into .git/ (every git command writes there), our own index folder or a top-level folder
the walker finds nothing in (node_modules/, .venv/): the root is watched without recursion, and each other top-level
folder recursively; a top-level folder that appears later gets its own watch when its creation is seen.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from ..config import Settings
from ..errors import RepochatError
from ..index.indexer import IndexSummary, embed_pending, update_index
from ..index.lock import index_write_lock
from ..index.store import IndexStore
from ..repo.walk import ignored_folder

log = logging.getLogger("repochat.live.watch")
DEBOUNCE_S = 0.4  # quiet time after the last event: an editor's save is several events in a few milliseconds
MAX_WAIT_S = 5.0  # a tool that keeps writing for minutes still gets the index updated this often
IGNORED_DIRS = (".git", "__pycache__", ".repochat")  # repository metadata, bytecode, our own index


class IndexGate:
    """A readers-writer lock: any number of queries at once, or one update alone.

    A waiting update goes before readers that arrive after it (queries are short; a steady stream of them must not
    hold an update off forever). Readers also wait for the first update, so none meets a half-built index.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._ready = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: self._ready and not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            self._condition.wait_for(lambda: not self._writing and self._readers == 0)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()

    def open(self) -> None:
        """Let readers in (after the first update, successful or not)."""
        with self._condition:
            self._ready = True
            self._condition.notify_all()


@dataclass
class WatchState:
    """What the watcher has done so far (for `index_status` and `repochat watch`)."""

    updates: int = 0
    last_update: IndexSummary | None = None
    last_error: str = ""
    embedded: int = 0
    changed_paths: set[str] = field(default_factory=set)  # seen since the last update started


class _ChangeCollector(FileSystemEventHandler):
    def __init__(self, root: Path, ignored: tuple[Path, ...], on_change: Callable[[str], None],
                 on_top_folder: Callable[[str, bool], None]) -> None:
        self._root = root
        self._ignored = ignored
        self._on_change = on_change
        self._on_top_folder = on_top_folder  # (name, exists): a top-level folder appeared or went away

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write") or (event.is_directory and event.event_type == "modified"):
            return  # reads change nothing; a folder's own mtime changes with its entries, which have their own events
        for raw, arrived in ((event.src_path, event.event_type == "created"), (getattr(event, "dest_path", ""), True)):
            rel = self._relative(raw)
            if rel:
                self._on_change(rel)
                if event.is_directory and "/" not in rel:
                    self._on_top_folder(rel, arrived)

    def _relative(self, raw: str | bytes) -> str:
        path = Path(raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw)
        if not raw or any(path == d or d in path.parents for d in self._ignored):
            return ""
        try:
            rel = path.relative_to(self._root)
        except ValueError:
            return ""
        if not rel.parts or any(part in IGNORED_DIRS for part in rel.parts):
            return ""
        return rel.as_posix()


class _TopLevelWatches:
    """The observer's watches: the root without recursion (its own files, and folders appearing or going), and every
    top-level folder recursively except the excluded and the ignored ones, so that .git/, the index folder and
    ignored folders such as node_modules/ are never watched."""

    def __init__(self, observer: BaseObserver, root: Path, excluded: set[str]) -> None:
        self._observer = observer
        self._root = root
        self._excluded = excluded
        self._folders: dict[str, ObservedWatch] = {}
        self._lock = threading.Lock()
        self._handler: FileSystemEventHandler | None = None

    def start(self, handler: FileSystemEventHandler) -> None:
        self._handler = handler
        self._observer.schedule(handler, str(self._root), recursive=False)
        for child in sorted(self._root.iterdir()):
            self.folder_changed(child.name, True)

    def folder_changed(self, name: str, exists: bool) -> None:
        """Add the watch of a top-level folder that appeared, drop the one of a folder that went away.

        Runs in the observer's thread too, which holds the observer's lock: our own lock guards only the mapping and
        is never held while calling the observer (the other order would deadlock with ``start``). Scheduling the
        same folder twice yields the same watch, so a race between the two threads is harmless."""
        path = self._root / name
        if exists and name not in self._excluded and path.is_dir() and not path.is_symlink() \
                and not ignored_folder(self._root, name):
            self._add(name, path)  # a symlinked folder may lead outside the repository; the walker skips it too
        elif not exists and not path.is_dir():
            self._drop(name)

    def _add(self, name: str, path: Path) -> None:
        assert self._handler is not None
        try:
            watch = self._observer.schedule(self._handler, str(path), recursive=True)
        except OSError as exc:  # gone again before the watch was set (a temporary folder)
            log.debug("not watching %s: %s", name, exc)
            return
        with self._lock:
            self._folders[name] = watch

    def _drop(self, name: str) -> None:
        with self._lock:
            watch = self._folders.pop(name, None)
        if watch is None:
            return
        try:
            self._observer.unschedule(watch)
        except (KeyError, RuntimeError) as exc:  # the emitter already ended with its folder
            log.debug("watch of %s already gone: %s", name, exc)


class IndexWatcher:
    """Follows file changes under ``root`` and updates the index; ``start`` also runs the first update."""

    def __init__(self, root: Path, settings: Settings, gate: IndexGate | None = None,
                 debounce: float = DEBOUNCE_S, max_wait: float = MAX_WAIT_S,
                 on_update: Callable[[IndexSummary], None] | None = None) -> None:
        self.root = root
        self.settings = settings
        self.gate = gate or IndexGate()
        self.state = WatchState()
        self._debounce = debounce
        self._max_wait = max_wait
        self._on_update = on_update
        self._wake = threading.Condition()
        self._first_change = 0.0
        self._last_change = 0.0
        self._pending = True  # the first pass brings the index up to date with whatever happened while stopped
        self._busy = False
        self._stopping = False
        self._observer = Observer()
        self._worker = threading.Thread(target=self._run, name="repochat-watch", daemon=True)

    def start(self) -> "IndexWatcher":
        index = self.settings.index_path(self.root).resolve()
        excluded = {*IGNORED_DIRS, *([index.name] if index.parent == self.root.resolve() else [])}
        watches = _TopLevelWatches(self._observer, self.root, excluded)
        self._observer.daemon = True
        self._observer.start()  # first: a folder created while the watches are being set up is then seen as well
        ignored = (index,) if isinstance(index, Path) else ()  # an index in a bucket is in no watched folder
        watches.start(_ChangeCollector(self.root, ignored, self._changed, watches.folder_changed))
        self._worker.start()
        return self

    @property
    def observer(self) -> BaseObserver:
        """The watchdog observer (its ``emitters`` show what is watched)."""
        return self._observer

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._observer.stop()
        self._observer.join(timeout)
        self._worker.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once no change is waiting and no update is running (for tests and `--once` style callers)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy,
                                       max(0.0, deadline - time.monotonic()))

    def _changed(self, rel: str) -> None:
        with self._wake:
            now = time.monotonic()
            if not self._pending:
                self._first_change = now
            self._pending = True
            self._last_change = now
            self.state.changed_paths.add(rel)
            self._wake.notify_all()

    def _run(self) -> None:
        while self._settle():
            self._update()
            if self.settings.embeddings:
                self._embed()
            with self._wake:
                self._busy = False
                self._wake.notify_all()

    def _settle(self) -> bool:
        """Wait for pending changes to go quiet; False when stopping. Marks the update as started."""
        with self._wake:
            while not self._stopping:
                if self._pending:
                    now = time.monotonic()
                    quiet_at = self._last_change + self._debounce
                    if now >= quiet_at or now >= self._first_change + self._max_wait:
                        self._pending, self._busy = False, True
                        self.state.changed_paths = set()
                        return True
                    self._wake.wait(min(quiet_at, self._first_change + self._max_wait) - now)
                else:
                    self._wake.wait()
            return False

    def _update(self) -> None:
        try:
            with index_write_lock(self.settings.index_path(self.root), on_wait=log.info), self.gate.write():
                summary = update_index(self.root, self.settings)
            self.state.updates += 1
            self.state.last_update, self.state.last_error = summary, ""
            log.info("index updated: %d parsed, %d removed in %.2fs", summary.parsed, summary.deleted,
                     summary.seconds)
            if self._on_update:
                self._on_update(summary)
        except RepochatError as exc:
            self.state.last_error = str(exc)
            log.error("index update failed: %s", exc)
        except Exception as exc:  # the watcher must outlive one bad update (disk full, a file vanishing mid-read)
            self.state.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("index update failed")
        finally:
            self.gate.open()

    def _embed(self) -> None:
        """Vectors for new chunks, outside the gate (adding vectors only makes hybrid search better, never wrong)
        and each batch written under the index lock; stops early when new changes arrive, and the next pass picks
        up the rest."""
        try:
            store = IndexStore.open(self.settings.index_path(self.root))
            self.state.embedded += embed_pending(store, self.settings, self._yield_to_changes, on_wait=log.info)
        except _ChangesArrived:
            log.debug("embedding paused: files changed")
        except RepochatError as exc:
            log.warning("embedding skipped: %s", exc)
        except Exception:  # noqa: BLE001 - a failed embedding leaves full-text search working; log and go on
            log.exception("embedding failed")

    def _yield_to_changes(self, _stage: str, _done: int, _total: int) -> None:
        if self._pending or self._stopping:
            raise _ChangesArrived


class _ChangesArrived(Exception):
    """Raised inside embedding to let an index update go first."""
