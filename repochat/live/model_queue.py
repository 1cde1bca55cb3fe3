"""The model's requests, one at a time: a first-come-first-served queue whose waiting and running requests can be
cancelled, and the engine's closing once nothing decodes.

A running request is stopped cooperatively: its work checks a CancelToken at each page or token (freeing or
interrupting llama.cpp's context under a decode would crash the process). The queue shares its EngineTurns with the
background KV refresh (see kv_refresh), which gives the engine up when a request waits.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

import anyio
import anyio.to_thread

from .kv_refresh import EngineTurns

log = logging.getLogger("repochat.live.server")  # the server's log: these lines tell what happened to its requests
T = TypeVar("T")
STOPPED = "stopped at its next page or token"  # logged when a cancelled request's work really stopped


class RequestCancelled(Exception):
    """Raised inside a running model request when its client cancelled it."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.honoured = False  # the work saw the cancellation and stopped, rather than finishing first

    def cancel(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            self.honoured = True
            raise RequestCancelled


class ModelQueue:
    """One model request at a time, first come first served; waiting and running requests can be cancelled.
    ``turns`` is shared with the background KV refresh, which gives the engine up when a request waits."""

    def __init__(self, turns: EngineTurns | None = None) -> None:
        self._lock = anyio.Lock()
        self._running: dict[CancelToken, threading.Event] = {}
        self.turns = turns or EngineTurns()

    async def run(self, job: Callable[[CancelToken], T]) -> T:
        token = CancelToken()
        async with self._lock:  # a request cancelled while waiting here simply leaves the queue
            finished = threading.Event()
            self._running[token] = finished

            def work() -> T:
                try:
                    with self.turns.foreground():
                        token.check()
                        return job(token)
                finally:
                    finished.set()

            try:
                return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
            except anyio.get_cancelled_exc_class():
                token.cancel()  # the worker stops at its next page or token; the model stays ours until then
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(finished.wait)
                log.info("cancelled model request %s", STOPPED if token.honoured else "had already finished")
                raise
            finally:
                self._running.pop(token, None)

    def cancel_all(self) -> None:
        """Ask every running request to stop at its next page or token (``close_engine_when_stopped`` waits)."""
        for token in list(self._running):
            token.cancel()


def close_engine_when_stopped(turns: EngineTurns, close: Callable[[], None], timeout: float) -> bool:
    """Run ``close`` once nothing decodes: in a turn of its own, which a request or a refresh gives up only when it
    stops, and which keeps anything new from starting meanwhile. False if the turn did not come within ``timeout``
    (then ``close`` runs later, if ever: never under a decode)."""
    closed = threading.Event()

    def close_in_turn() -> None:
        try:
            with turns.foreground():
                close()
        except Exception:  # noqa: BLE001 - shutting down: report and go on
            log.exception("closing the engine failed")
        finally:
            closed.set()

    threading.Thread(target=close_in_turn, name="repochat-close-engine", daemon=True).start()
    return closed.wait(timeout)
