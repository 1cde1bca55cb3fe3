"""Where each file sits in the whole-repository context, kept in place across edits.

The first whole-repository context is laid out in stability order, and that layout is remembered. When files change
later, the remembered layout goes into the context unchanged, so every KV page of it stays valid, and the current
versions of the changed files (or a notice that a file was deleted) are appended after it, under a heading that says
the last copy of a file is the current one. A layout grows only at its end: an edit costs the prefill of the changed
files and the question, wherever the files sat, instead of everything from the first changed file onwards.

Superseded copies take room in the context and may distract the model, so the layout is rebuilt in fresh stability
order when they would pass ``max_stale_share`` of it, when rebuilding would prefill no more than appending, or when
the grown layout no longer fits the context.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..atomic import write_atomic
from .prompt import RenderedFile, deletion_notice

log = logging.getLogger("repochat.answer.prefix_layout")
_FORMAT = 1
_STALE_TEMP_SECONDS = 3600
Measure = Callable[[str], int]


@dataclass(frozen=True)
class Layout:
    """The entries of a whole-repository context, in order; a path may come again later with a newer version."""

    entries: list[RenderedFile]
    laid_out: int  # entries[:laid_out] were laid out in stability order; the rest were appended since
    changed: bool  # not the remembered layout (worth remembering)

    @property
    def base(self) -> list[RenderedFile]:
        return self.entries[:self.laid_out]

    @property
    def appended(self) -> list[RenderedFile]:
        return self.entries[self.laid_out:]

    @property
    def rebuilt(self) -> bool:
        return self.changed and not self.appended


def fresh_layout(files: list[RenderedFile]) -> Layout:
    return Layout(list(files), len(files), changed=True)


def arrange(files: list[RenderedFile], remembered: Layout | None, max_stale_share: float,
            measure: Measure) -> Layout:
    """The layout for ``files`` (the repository now, in stability order) given the remembered layout."""
    if remembered is None or not remembered.entries or max_stale_share <= 0:
        return fresh_layout(files)
    latest = current_versions(remembered.entries)
    present = {f.path for f in files}
    additions = [f for f in files if latest.get(f.path) != f.text]
    additions += [deletion_notice(path) for path in latest if path not in present]
    if not additions:
        return Layout(remembered.entries, remembered.laid_out, changed=False)
    grown = Layout(remembered.entries + additions, remembered.laid_out, changed=True)
    appended = sum(measure(f.text) for f in additions)
    if stale_share(grown, measure) > max_stale_share or _rebuild_cost(files, remembered.entries, measure) <= appended:
        return fresh_layout(files)
    return grown


def current_versions(entries: list[RenderedFile]) -> dict[str, str]:
    """Path -> rendered text of its last entry, for the paths whose last entry is not a deletion."""
    latest = {f.path: f for f in entries}
    return {path: f.text for path, f in latest.items() if not f.deleted}


def stale_share(layout: Layout, measure: Measure) -> float:
    """The share of the layout's tokens in copies a later entry supersedes, and in deleted files and their
    notices."""
    entries = layout.entries
    last = {f.path: index for index, f in enumerate(entries)}
    stale = sum(measure(f.text) for index, f in enumerate(entries)
                if last[f.path] != index or entries[last[f.path]].deleted)
    return stale / max(sum(measure(f.text) for f in entries), 1)


def _rebuild_cost(files: list[RenderedFile], entries: list[RenderedFile], measure: Measure) -> int:
    """Tokens a fresh layout would prefill: everything after the part it shares with the remembered one."""
    shared = 0
    for now, then in zip(files, entries):
        if now != then:
            break
        shared += 1
    return sum(measure(f.text) for f in files[shared:])


class LayoutMemory:
    """The remembered layout of one repository, in the cache directory (gzipped JSON, written atomically).

    Keyed by the repository's root and ``scope`` (the settings that decide which files are read), so that a run with
    another file size limit does not take the files it leaves out for deleted ones. Two processes (an ask and the
    background refresher) may lay out at once: a save is skipped when the file changed since it was loaded, so the
    first layout saved stays and the other's pages are simply not reused. The least recently used layouts beyond
    ``KEEP_LAYOUTS`` are removed: each holds the text of a whole repository."""

    KEEP_LAYOUTS = 32

    def __init__(self, cache_dir: Path, root: Path, scope: str = "") -> None:
        key = f"{root.resolve()}\0{scope}".encode("utf-8", "surrogateescape")
        self.folder = Path(cache_dir).expanduser() / "layouts"
        self.path = self.folder / f"{hashlib.sha256(key).hexdigest()[:24]}.json.gz"
        self._loaded_stamp: tuple[int, int] | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_ino

    def load(self) -> Layout | None:
        """The remembered layout; None when there is none or it cannot be read (a fresh one is then laid out)."""
        self._loaded_stamp = self._stamp()
        try:
            data = json.loads(gzip.decompress(self.path.read_bytes()))
            if data.get("format") != _FORMAT:
                return None
            entries = [RenderedFile(path, text, lines, bool(deleted)) for path, text, lines, deleted in data["entries"]]
            return Layout(entries, int(data["laid_out"]), changed=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, EOFError) as exc:
            log.warning("ignoring unreadable layout %s (%s): the context is laid out afresh", self.path, exc)
            return None

    def save(self, layout: Layout) -> bool:
        """Remember ``layout``; False when another process saved one since this memory was loaded, or the disk
        refused it."""
        if self._stamp() != self._loaded_stamp:
            log.info("layout %s changed since it was read: keeping the other process's layout", self.path)
            return False
        payload = json.dumps({"format": _FORMAT, "laid_out": layout.laid_out,
                              "entries": [[f.path, f.text, f.lines, f.deleted] for f in layout.entries]})
        try:
            self._write(gzip.compress(payload.encode("utf-8", "surrogateescape"), compresslevel=1))
        except OSError as exc:  # only the next ask's reuse is lost: it lays out afresh
            log.warning("could not save the layout %s: %s", self.path, exc)
            return False
        self._loaded_stamp = self._stamp()
        self._prune()
        return True

    def _write(self, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, data, prefix=".layout-")

    def _prune(self) -> None:
        """Drop the least recently saved layouts beyond KEEP_LAYOUTS, and temporary files a killed save left."""
        now = time.time()
        layouts = []
        for path in self.folder.iterdir():
            try:
                modified = path.stat().st_mtime
            except OSError:
                continue
            if path.name.startswith(".layout-"):
                if now - modified > _STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
            elif path.name.endswith(".json.gz"):
                layouts.append((modified, path))
        for _, path in sorted(layouts, reverse=True)[self.KEEP_LAYOUTS:]:
            path.unlink(missing_ok=True)
