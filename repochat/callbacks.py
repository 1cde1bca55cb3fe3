"""Callback types shared by every layer. No imports from repochat, so the engine, the index and the commands can
all use them without an import running back up."""

from __future__ import annotations

from typing import Callable

# (stage, done, total): long work reports how far it is; the stage names are progress.LABELS's keys.
Progress = Callable[[str, int, int], None]
# Text as it is generated, piece by piece (an answer streamed to the terminal or a client).
TextSink = Callable[[str], None]
