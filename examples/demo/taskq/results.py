"""Where the outcome of each job is kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .queue import Job


@dataclass(frozen=True)
class Outcome:
    job: str
    ok: bool
    value: Any
    attempts: int


class ResultStore:
    """Keeps the last `capacity` outcomes, oldest dropped first."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._outcomes: list[Outcome] = []

    def record_success(self, job: Job, value: Any) -> None:
        self._add(Outcome(job.name, True, value, job.attempts))

    def record_failure(self, job: Job, error: Exception) -> None:
        self._add(Outcome(job.name, False, repr(error), job.attempts))

    def _add(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        if len(self._outcomes) > self.capacity:
            del self._outcomes[0]

    def failures(self) -> list[Outcome]:
        return [o for o in self._outcomes if not o.ok]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._outcomes)
