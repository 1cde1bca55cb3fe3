"""Stability order of files: what changed least recently comes first.

Whole-repository pages are laid out in this order so that an edit, which usually touches recently changed files,
invalidates only the tail of the page chain. Order: files by their last commit (oldest first; files untouched in the
scanned history first of all), then untracked, modified and staged files by modification time. Outside git: by
modification time.
"""

from __future__ import annotations

import os
from pathlib import Path

from .git import git_text

_MAX_COMMITS = 10_000  # files untouched for this long count as the most stable of all
_COMMIT_MARK = "\x01"


def _git(root: Path, *args: str) -> str | None:
    # quotepath off: the log's --name-only lists paths one a line, and non-ASCII names must come out as themselves
    return git_text(root, "-c", "core.quotepath=off", *args)


def last_change_times(root: Path, rev: str = "HEAD") -> dict[str, int] | None:
    """Path -> commit time of the last commit (up to ``rev``) that touched it; None outside a git repository."""
    listing = _git(root, "log", f"--max-count={_MAX_COMMITS}", f"--format={_COMMIT_MARK}%ct", "--name-only",
                   "--no-renames", rev, "--")
    if listing is None:
        return None
    times: dict[str, int] = {}
    current = 0
    for line in listing.splitlines():
        if line.startswith(_COMMIT_MARK):
            current = int(line[1:])
        elif line:
            times.setdefault(line, current)  # the log runs newest first: the first sighting is the last change
    return times


def changed_paths(root: Path) -> set[str]:
    """Staged, modified and untracked (not ignored) files of the work tree."""
    listing = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if not listing:
        return set()
    changed: set[str] = set()
    entries = iter(listing.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        changed.add(entry[3:])
        if entry[0] in "RC":  # a rename or copy is followed by its source path
            next(entries, None)
    return changed


def _mtime(root: Path, rel: str) -> float:
    try:
        return os.stat(root / rel).st_mtime
    except OSError:
        return 0.0


def stability_order(root: Path, paths: list[str], rev: str = "HEAD", include_worktree: bool = True) -> list[str]:
    """``paths`` sorted from the least to the most recently changed."""
    times = last_change_times(root, rev)
    if times is None:
        return sorted(paths, key=lambda rel: (_mtime(root, rel), rel))
    changed = changed_paths(root) if include_worktree else set()
    settled = [p for p in paths if p not in changed and p in times]
    # Tracked but untouched in the scanned history: older than anything in it.
    ancient = sorted(p for p in paths if p not in changed and p not in times)
    moving = [p for p in paths if p in changed]
    settled.sort(key=lambda rel: (times[rel], rel))
    moving.sort(key=lambda rel: (_mtime(root, rel), rel))
    return ancient + settled + moving
