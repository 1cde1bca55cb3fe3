"""The worker: runs ready jobs, retries failures with exponential back-off, records results."""

from __future__ import annotations

import logging

from .queue import Job, Queue
from .results import ResultStore

log = logging.getLogger(__name__)

BASE_DELAY = 0.5  # seconds before the first retry
MAX_DELAY = 30.0


def backoff_delay(attempt: int) -> float:
    """Delay before retry number `attempt` (1-based): doubles each time, capped at MAX_DELAY."""
    return min(BASE_DELAY * 2 ** (attempt - 1), MAX_DELAY)


class Worker:
    def __init__(self, queue: Queue, results: ResultStore | None = None) -> None:
        self.queue = queue
        self.results = results or ResultStore()

    def run_once(self) -> bool:
        """Run one ready job. Returns False when no job was ready."""
        job = self.queue.pop_ready()
        if job is None:
            return False
        self._run(job)
        return True

    def run_until_empty(self) -> None:
        while len(self.queue):
            if not self.run_once():
                break

    def _run(self, job: Job) -> None:
        job.attempts += 1
        try:
            value = self.queue.handler(job.name)(*job.args, **job.kwargs)
        except Exception as exc:  # a job may raise anything; the worker must survive it
            self._failed(job, exc)
        else:
            self.results.record_success(job, value)

    def _failed(self, job: Job, exc: Exception) -> None:
        if job.attempts <= self.queue.max_retries(job.name):
            delay = backoff_delay(job.attempts)
            log.warning("job %s failed (%s); retry %d in %.1fs", job.name, exc, job.attempts, delay)
            self.queue.requeue(job, delay)
        else:
            self.results.record_failure(job, exc)
