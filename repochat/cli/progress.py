"""Progress shown on stderr for long work (indexing, embedding, prefill); silent when stderr is not a terminal
unless asked, so scripts and --json output stay clean."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

LABELS = {"parse": "indexing files", "embed": "embedding chunks", "prefill": "prefilling pages",
          "restore": "restoring cached pages", "assemble": "preparing model",
          "pieces": "assembling the context (cached pieces restored, new ones prefilled)",
          "probe": "checking that llama.cpp runs on this CPU (once)",
          "warm": "computing KV pieces ahead of questions"}


class BarReporter:
    """(stage, done, total) -> one rich bar per stage on stderr, until ``finish`` clears them for good.

    The bars live on the terminal below everything printed while they are shown, and rich erases their lines when
    they stop: text streamed to stdout meanwhile (an answer) would be erased with them. So whoever starts printing
    results calls ``finish`` first; later progress is dropped."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._tasks: dict[str, TaskID] = {}
        self._finished = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._finished:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._bars.add_task(LABELS.get(stage, stage), total=total or None)
        self._bars.update(self._tasks[stage], completed=done, total=total or None)

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._bars.stop()


class LineReporter:
    """For a log file or CI: a line at most every few seconds per stage, and at the end (nothing when disabled)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self._enabled and (done >= total or now - self._last.get(stage, 0.0) > 5):
            self._last[stage] = now
            print(f"{LABELS.get(stage, stage)}: {done}/{total}", file=sys.stderr, flush=True)

    def finish(self) -> None:
        """Lines already printed stay where they are."""


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[BarReporter | LineReporter]:
    """A callback (stage, done, total): bars on a terminal's stderr, else occasional lines on stderr."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield LineReporter(enabled and not console.is_terminal)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bars:
        reporter = BarReporter(bars)
        yield reporter
        reporter.finish()
