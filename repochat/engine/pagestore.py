"""KV pages on disk: one file per page delta, keyed by a prefix chain, checksummed, size-bounded with LRU eviction.

A page's key hashes the previous page's key, the model/cache identity and the page's own tokens, so a key names the
whole prefix up to and including that page: a page can only be reused behind exactly the same pages. Files are
written to a temporary name and renamed, so an interrupted write (Ctrl-C, crash) never leaves a page that looks
valid; a file that is damaged later fails its checksum and is deleted by the reader.

Layout: <cache_dir>/kv/v<FORMAT>/<identity>/<key[:2]>/<index>-<key>.kvp  (the format version is in the path: a new
format starts a new cache instead of misreading an old one).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from ..atomic import write_atomic

log = logging.getLogger("repochat.pagestore")
FORMAT_VERSION = 1
_MAGIC = b"RCKV"
_HEADER = struct.Struct("<4sIIIQ32s")  # magic, format, page index, tokens, payload bytes, sha256(payload)
_STALE_TEMP_SECONDS = 3600
_EVICT_TO_SHARE = 0.9  # eviction goes down to this share of the bound


def chain_keys(identity: str, pages: list[list[int]]) -> list[str]:
    """Prefix-chained keys: key[i] = sha256(key[i-1] + identity + tokens of page i)."""
    keys, previous = [], b""
    for tokens in pages:
        digest = hashlib.sha256(previous)
        digest.update(identity.encode())
        digest.update(np.asarray(tokens, dtype="<i4").tobytes())
        previous = digest.digest()
        keys.append(previous.hex())
    return keys


class LoadStatus(Enum):
    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass
class Loaded:
    status: LoadStatus
    data: bytearray | None = None
    reason: str = ""


class PageStore:
    """Page files for one model/cache identity, inside a size-bounded cache shared by all identities."""

    def __init__(self, cache_dir: Path, identity: str, max_bytes: int) -> None:
        self.root = Path(cache_dir).expanduser() / "kv" / f"v{FORMAT_VERSION}"
        self.directory = self.root / hashlib.sha256(identity.encode()).hexdigest()[:16]
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes on disk, counted on first save

    def path(self, index: int, key: str) -> Path:
        return self.directory / key[:2] / f"{index:07d}-{key}.kvp"

    def exists(self, index: int, key: str) -> bool:
        return self.path(index, key).is_file()

    def present_run(self, keys: list[str], first: int = 0) -> int:
        """Index of the first page from ``first`` on that has no file (the chain's files are checked, not read)."""
        index = first
        while index < len(keys) and self.exists(index, keys[index]):
            index += 1
        return index

    def load(self, index: int, key: str) -> Loaded:
        """Read and verify a page; a damaged one is deleted so that it gets recomputed."""
        path = self.path(index, key)
        try:
            raw = bytearray(path.read_bytes())
        except OSError:  # gone, or unreadable: either way it is recomputed
            return Loaded(LoadStatus.MISSING)
        reason = _check(raw, index)
        if reason:
            self._discard(path)
            return Loaded(LoadStatus.CORRUPT, reason=f"{path.name}: {reason}")
        del raw[:_HEADER.size]  # the payload, without copying it again
        return Loaded(LoadStatus.OK, raw)

    def save(self, index: int, key: str, n_tokens: int, data: bytes | bytearray, protect: set[str]) -> bool:
        """Write a page atomically. False when the cache bound leaves no room even after evicting other pages."""
        path = self.path(index, key)
        if path.is_file():  # written meanwhile by another ask of the same repository
            return True
        size = _HEADER.size + len(data)
        if not self._make_room(size, protect):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        header = _HEADER.pack(_MAGIC, FORMAT_VERSION, index, n_tokens, len(data), hashlib.sha256(data).digest())
        try:
            write_atomic(path, header, data, prefix=".tmp-", suffix=".kvp")
        except BaseException:
            with self._lock:
                self._total = (self._total or 0) - size
            raise
        return True

    def touch(self, index_keys: list[tuple[int, str]], when: float | None = None) -> None:
        """Mark a chain as used now. One timestamp for the whole chain; eviction breaks ties from the tail."""
        when = time.time() if when is None else when
        for index, key in index_keys:
            try:
                os.utime(self.path(index, key), (when, when))
            except OSError:  # gone, or a read-only cache: only the LRU order is lost
                pass

    def usage(self) -> int:
        return sum(size for _, size, _ in _scan(self.root))

    def _make_room(self, size: int, protect: set[str]) -> bool:
        with self._lock:
            if self._total is None:
                self._total = self.usage()
            if self._total + size > self.max_bytes:
                # Free a little more than needed so that the next saves do not each rescan the cache.
                target = int(self.max_bytes * _EVICT_TO_SHARE)
                self._total -= _evict(self.root, self._total + size - target, protect)
            if self._total + size > self.max_bytes:
                return False
            self._total += size
            return True

    def _discard(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:  # gone already, or a read-only cache (the page stays damaged and is recomputed each time)
            return
        with self._lock:
            if self._total is not None:
                self._total -= size


def _check(raw: bytearray, index: int) -> str:
    """Why ``raw`` is not a valid page file for position ``index``, or '' if it is."""
    if len(raw) < _HEADER.size:
        return "truncated header"
    magic, version, stored_index, _tokens, length, checksum = _HEADER.unpack_from(raw)
    if magic != _MAGIC or version != FORMAT_VERSION or stored_index != index:
        return "not a page of this format"
    if len(raw) != _HEADER.size + length:
        return f"truncated ({len(raw) - _HEADER.size} of {length} bytes)"
    if hashlib.sha256(memoryview(raw)[_HEADER.size:]).digest() != checksum:
        return "checksum mismatch"
    return ""


def _scan(root: Path) -> list[tuple[Path, int, float]]:
    """(path, size, mtime) of every page file; stale temporary files from interrupted writes are removed."""
    found = []
    now = time.time()
    for directory, _subdirs, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            try:
                stat = path.stat()
                if name.startswith(".tmp-"):
                    if now - stat.st_mtime > _STALE_TEMP_SECONDS:
                        path.unlink(missing_ok=True)
                    continue
            except OSError:
                continue
            if name.endswith(".kvp"):
                found.append((path, stat.st_size, stat.st_mtime))
    return found


def _page_order(entry: tuple[Path, int, float]) -> tuple[float, int]:
    """Least recently used first; within one chain (same time) the tail first, so a valid prefix survives."""
    path, _size, mtime = entry
    index = int(path.name.split("-", 1)[0])
    return (mtime, -index)


def _evict(root: Path, needed: int, protect: set[str]) -> int:
    """Delete least recently used pages not in ``protect`` until ``needed`` bytes are freed; returns bytes freed."""
    freed = 0
    for path, size, _mtime in sorted(_scan(root), key=_page_order):
        if freed >= needed:
            break
        if path.stem.split("-", 1)[1] in protect:
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue
        freed += size
    if freed:
        log.info("evicted %d bytes of KV pages (cache bound)", freed)
    return freed
