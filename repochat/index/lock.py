"""One index writer at a time, across processes and threads: an exclusive flock on a file in the index folder.

An flock belongs to an open file, and the OS drops it when that file is closed, also when the process dies (kill -9
included), so no lock is ever left stale. Two opens of the lock file conflict even within one process, so a watcher
thread and a server's ask exclude each other as two processes do. The same thread may take the lock again while it
holds it (a watcher holds it around ``update_index``, which takes it too) without waiting for itself.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import IndexStoreError
from .location import IndexDir, local_folder

LOCK_FILE = "write.lock"
WAIT_NOTICE = "waiting for another repochat index of this repository to finish ..."

_registry = threading.Lock()
_held: dict[tuple[str, int], list[int]] = {}  # (lock file, thread id) -> [depth, fd]


class IndexBusy(IndexStoreError):
    """Another writer holds the index lock and the caller chose not to wait."""


def lock_notice(message: str) -> None:
    """The default word that a writer waits: on stderr, where progress goes."""
    print(f"repochat: {message}", file=sys.stderr, flush=True)


@contextmanager
def index_write_lock(index_dir: IndexDir, wait: bool = True,
                     on_wait: Callable[[str], None] | None = lock_notice) -> Iterator[None]:
    """Hold the write lock of the index under ``index_dir``. Busy: wait (saying so once through ``on_wait``), or
    raise IndexBusy when ``wait`` is False. An index folder that cannot be created or written is an IndexStoreError."""
    path = lock_path(index_dir)
    key = (str(path), threading.get_ident())
    with _registry:
        mine = _held.get(key)
        if mine is not None:
            mine[0] += 1
    if mine is not None:
        try:
            yield
        finally:
            with _registry:
                mine[0] -= 1
        return
    fd = _open(path)
    try:
        _acquire(fd, wait, on_wait)
        with _registry:
            _held[key] = [1, fd]
        try:
            yield
        finally:
            with _registry:
                del _held[key]
    finally:
        os.close(fd)  # releases the flock


def lock_path(index_dir: IndexDir) -> Path:
    return local_folder(index_dir) / LOCK_FILE  # an index in a bucket: a lock of this machine's (location.py)


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise IndexStoreError(f"cannot write the index at {path.parent}: {exc.strerror or exc}") from exc


def _acquire(fd: int, wait: bool, on_wait: Callable[[str], None] | None) -> None:
    """The lock on fd, or an error (the caller closes fd either way)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise IndexStoreError(f"cannot lock the index ({exc.strerror or exc})") from exc
    if not wait:
        raise IndexBusy("another repochat process is updating the index")
    if on_wait:
        on_wait(WAIT_NOTICE)
    fcntl.flock(fd, fcntl.LOCK_EX)
