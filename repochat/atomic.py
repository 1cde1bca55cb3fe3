"""Files that appear whole or not at all: written under a temporary name beside the target, then renamed onto it.

A rename within one folder is atomic, so a reader (another ask, a second process) sees the old file or the new one,
never half of one; a failed or interrupted write leaves the old file as it was. The temporary name starts with the
caller's ``prefix`` so that the caller can recognise, and sweep, what a killed process left behind.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replacing(target: Path, prefix: str, suffix: str = "") -> Iterator[Path]:
    """A fresh empty temporary file beside ``target`` to fill; renamed onto ``target`` when the block ends
    normally, removed when it raises."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)  # after a rename: nothing there


def write_atomic(target: Path, *chunks: bytes | bytearray, prefix: str, suffix: str = "") -> None:
    """``target`` holds exactly ``chunks``, one after another. Chunks, not one joined bytes object: a KV page is
    hundreds of megabytes, and joining its header to it would copy it all once more."""
    with replacing(target, prefix, suffix) as temporary:
        with open(temporary, "wb") as sink:
            for chunk in chunks:
                sink.write(chunk)
