"""Progress shown on stderr for long work (indexing, embedding, prefill); silent when stderr is not a terminal
unless asked, so scripts and --json output stay clean."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LABELS = {"parse": "indexing files", "embed": "embedding chunks", "prefill": "prefilling pages",
          "restore": "restoring cached pages", "assemble": "preparing model",
          "probe": "checking that llama.cpp runs on this CPU (once)"}


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A callback (stage, done, total) that draws one bar per stage on stderr."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield _plain_reporter(enabled and not console.is_terminal)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bars:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(LABELS.get(stage, stage), total=total or None)
            bars.update(tasks[stage], completed=done, total=total or None)

        yield report


def _plain_reporter(enabled: bool) -> Callable[[str, int, int], None]:
    """For a log file or CI: a line at most every few seconds per stage, and at the end."""
    last: dict[str, float] = {}

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if enabled and (done >= total or now - last.get(stage, 0.0) > 5):
            last[stage] = now
            print(f"{LABELS.get(stage, stage)}: {done}/{total}", file=sys.stderr, flush=True)

    return report
