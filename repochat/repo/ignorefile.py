"""Ignore files (.gitignore, .repochatignore) read the way git reads them: a line git cannot use is skipped and
counted, never fatal (pathspec raises on a lone `!` or a trailing backslash, where git just ignores the line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pathspec
import pathspec.util

from .safe_read import read_regular


@dataclass
class IgnoreFile:
    spec: pathspec.PathSpec | None  # None when no line holds a pattern
    invalid_lines: list[int] = field(default_factory=list)  # 1-based numbers of the lines skipped

    def match_file(self, rel: str) -> bool:
        return bool(self.spec and self.spec.match_file(rel))


def parse_ignore_lines(lines: list[str]) -> IgnoreFile:
    """The patterns of gitignore-syntax lines; each line pathspec rejects is left out and its number kept."""
    factory = pathspec.util.lookup_pattern("gitignore")
    patterns, invalid = [], []
    for number, line in enumerate(lines, 1):
        try:
            patterns.append(factory(line))
        except ValueError:  # GitIgnorePatternError (GitWildMatchPatternError before pathspec 1.0) is a ValueError
            invalid.append(number)
    usable = [p for p in patterns if p.include is not None]  # blank lines and comments hold no pattern
    return IgnoreFile(pathspec.PathSpec(usable) if usable else None, invalid)


def read_ignore_file(path: Path) -> IgnoreFile | None:
    """The ignore file at path, or None when there is none (or it is unreadable, a link, a FIFO: skipped)."""
    try:
        data = read_regular(path, follow_symlinks=False)  # git does not follow a symlinked ignore file either
    except OSError:
        return None
    return parse_ignore_lines(data.decode("utf-8", errors="replace").splitlines())
