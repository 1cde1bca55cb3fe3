"""An engine loaded on first use and then kept: its model and the KV pages in memory serve later requests.

Loading is deferred so that a server or watcher starts without importing llama.cpp or reading the model.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..callbacks import Progress

if TYPE_CHECKING:
    from ..config import Settings
    from .session import Engine


class LazyEngine:
    """Thread-safe: the first ``get`` loads the configured model, later ones return the same engine."""

    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self._settings = settings
        self._progress = progress
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def get(self, progress: Progress | None = None) -> Engine:
        with self._lock:
            if self._engine is None:
                from .models import resolve_model
                from .session import Engine

                model = resolve_model(self._settings, progress or self._progress)
                self._engine = Engine(model, self._settings, progress or self._progress)
            return self._engine

    def loaded(self) -> Engine | None:
        """The engine if something has loaded it, without loading it."""
        with self._lock:
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def __enter__(self) -> LazyEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
