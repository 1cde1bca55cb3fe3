"""taskq: a tiny in-process job queue with retries."""

from .queue import Job, Queue
from .results import ResultStore
from .worker import Worker

__all__ = ["Job", "Queue", "ResultStore", "Worker"]
