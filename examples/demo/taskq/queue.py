"""Jobs and the queue that holds them until a worker takes them."""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(order=True)
class Job:
    run_at: float
    sequence: int
    name: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())
    kwargs: dict[str, Any] = field(compare=False, default_factory=dict)
    attempts: int = field(compare=False, default=0)


class UnknownJob(KeyError):
    """Raised when a job name was never registered with @queue.job."""


class Queue:
    """A priority queue of jobs ordered by the time they may run."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._heap: list[Job] = []
        self._counter = itertools.count()
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._retries: dict[str, int] = {}
        self.clock = clock

    def job(self, retries: int = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a function as a job that may be retried `retries` times after failing."""
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers[function.__name__] = function
            self._retries[function.__name__] = retries
            return function
        return register

    def enqueue(self, name: str, *args: Any, delay: float = 0.0, **kwargs: Any) -> Job:
        if name not in self._handlers:
            raise UnknownJob(name)
        job = Job(self.clock() + delay, next(self._counter), name, args, kwargs)
        heapq.heappush(self._heap, job)
        return job

    def requeue(self, job: Job, delay: float) -> None:
        job.run_at = self.clock() + delay
        job.sequence = next(self._counter)
        heapq.heappush(self._heap, job)

    def pop_ready(self) -> Job | None:
        """The next job whose time has come, or None."""
        if self._heap and self._heap[0].run_at <= self.clock():
            return heapq.heappop(self._heap)
        return None

    def handler(self, name: str) -> Callable[..., Any]:
        return self._handlers[name]

    def max_retries(self, name: str) -> int:
        return self._retries.get(name, 0)

    def __len__(self) -> int:
        return len(self._heap)
