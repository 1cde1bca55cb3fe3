"""Reading a file of the work tree without the traps a repository can hold: a FIFO or device blocks a plain open()
forever, so the file is opened non-blocking and read only when it is a regular file."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegularFile(OSError):
    """The path names a FIFO, socket, device or directory: it has no content to read."""


def read_regular(path: Path, follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file. Raises NotRegularFile for anything else, FileNotFoundError or another OSError
    as open() would; with follow_symlinks=False a symlink raises OSError (ELOOP) instead of being followed."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)
