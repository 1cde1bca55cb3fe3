"""Keep a repository's index in step with its work tree while it is being edited.

A watchdog observer collects changed paths; a worker thread waits until the changes settle (``debounce`` seconds
without a new event, or at most ``max_wait`` after the first one) and then brings the index up to date with one
``update_index`` run, so a burst (a branch switch, a formatter run over the repository) costs one update. Vectors are
computed afterwards, in the same thread, and that work gives way as soon as new changes arrive.

Readers and the updater share an ``IndexGate``: an update holds it exclusively, so a query sees the index before the
update or after it, never half of it.
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

from .config import Settings
from .errors import RepochatError
from .index.indexer import IndexSummary, embed_pending, update_index
from .index.store import IndexStore

log = logging.getLogger("repochat.watch")
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
    def __init__(self, root: Path, ignored: tuple[Path, ...], on_change: Callable[[str], None]) -> None:
        self._root = root
        self._ignored = ignored
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write") or (event.is_directory and event.event_type == "modified"):
            return  # reads change nothing; a folder's own mtime changes with its entries, which have their own events
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            rel = self._relative(raw)
            if rel:
                self._on_change(rel)

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
        ignored = (self.settings.index_path(self.root).resolve(),)
        self._observer.schedule(_ChangeCollector(self.root, ignored, self._changed), str(self.root), recursive=True)
        self._observer.daemon = True
        self._observer.start()
        self._worker.start()
        return self

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
            with self.gate.write():
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
        """Vectors for new chunks, outside the gate (adding vectors only makes hybrid search better, never wrong);
        stops early when new changes arrive, and the next pass picks up the rest."""
        try:
            store = IndexStore.open(self.settings.index_path(self.root))
            self.state.embedded += embed_pending(store, self.settings, self._yield_to_changes)
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
