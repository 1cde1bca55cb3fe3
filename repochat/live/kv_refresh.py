"""Keep the KV the next ask assembles ready while files change.

Without this, the first `ask` after an edit prefills the edited files' pieces (or, with prefix pages, every page
after the first changed file) in the foreground. ``KvRefresher`` does that work in the background after each index
update instead (``warm_repository``): the pieces of changed files, or of changed chunks in retrieval mode (see
repochat.answer.kv_warm), so the next ask finds them in memory or on disk and only decodes its question.

The engine has one context, shared with client requests; ``EngineTurns`` hands it out. A request always goes first:
the refresh starts only while no request runs or waits, and when one arrives it stops at the next piece (or page)
boundary. What it wrote stays valid (a piece's key names its own tokens, a page's its whole prefix); once the
request is done the refresh starts over, and what is already in memory or on disk makes that restart cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..callbacks import Progress
from ..config import Settings
from ..engine.reports import PrefixStats
from ..engine.session import Engine
from ..engine.models import resolve_model
from ..engine.planner import MIN_CONTEXT, pieces_sound
from ..errors import RepochatError
from ..index.store import IndexStore
from ..answer.kv_warm import WarmReport, kv_fits_cache, pieces_to_warm, warm_pieces
from ..answer.prompt import Prompter
from ..answer.prefix import load_repository, plan_and_prefix

log = logging.getLogger("repochat.live.kv_refresh")
_TURN_POLL_S = 0.5  # how often a refresh waiting for the engine checks whether it is being stopped
RETRIEVAL_PAGES = "retrieval mode: the repository does not fit in the context (prefix pages depend on the question)"


class EngineTurns:
    """Who uses the engine now: one user at a time, client requests before background work."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._busy = False
        self._requests_waiting = 0

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """A client request's turn. It waits for a running request, and for background work only until that
        reaches its next page (background work polls ``wanted``)."""
        with self._condition:
            self._requests_waiting += 1
            try:
                self._condition.wait_for(lambda: not self._busy)
            finally:
                self._requests_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def background(self, timeout: float) -> Iterator[bool]:
        """A turn for background work once nothing runs and no request waits; yields False after ``timeout``."""
        with self._condition:
            granted = self._condition.wait_for(lambda: not self._busy and not self._requests_waiting, timeout)
            self._busy = self._busy or granted
        try:
            yield granted
        finally:
            if granted:
                self._release()

    def wanted(self) -> bool:
        """True while a request waits for its turn: background work should stop now."""
        return self._requests_waiting > 0

    def _release(self) -> None:
        with self._condition:
            self._busy = False
            self._condition.notify_all()


def warm_whole_repository(root: Path, settings: Settings, engine: Engine, on_progress: Progress | None = None,
                          check: Callable[[], None] | None = None) -> PrefixStats | None:
    """Bring the prefix that the next `ask` (effort auto) would use into ``engine`` and the page store, without
    asking anything. None when that ask would use retrieval: its prefix depends on the question, nothing to prepare.
    ``check`` runs between the steps before the first page (reading and tokenizing a large repository takes a
    while); like ``on_progress`` after each page, it may raise to stop the work."""
    check = check or (lambda: None)
    repo = load_repository(root, settings)
    check()
    plan, prompt = plan_and_prefix(repo, Prompter(engine.model, engine.model_path), engine.model_path, settings, "auto",
                              remember=True)
    if prompt is None:
        return None
    check()
    engine.ensure_context(plan.context)  # the size an ask creates: a bigger one would drop the pages from memory
    return engine.load_context(prompt.head, prompt.pieces, settings, on_progress)


def warm_repository(root: Path, settings: Settings, engine: Engine, on_progress: Progress | None = None,
                    check: Callable[[], None] | None = None, policy: str = "on",
                    keep_in_memory: bool = False) -> WarmReport:
    """Compute the KV the next `ask` (effort auto) would assemble and is not cached yet (repochat.answer.kv_warm).

    Pieces where the model's cache can shift positions: the files' pieces when the whole repository goes in, else
    the index chunks' pieces, which ``policy`` (the index_kv setting) may leave out: "off", or "auto" when the
    repository's KV does not fit kv_cache_size. With ``keep_in_memory`` an engine whose context can hold the whole
    repository (one an ask has created) gets it assembled there too, so that the next ask only decodes its
    question; otherwise the pieces are computed one at a time in a small context and saved. Prefix pages (kv_pieces
    off, a sliding-window model, a cache that cannot shift) are the whole-repository chain, prefilled in the context
    as an ask would."""
    began = time.monotonic()
    check = check or (lambda: None)
    if not pieces_sound(engine.model_path, settings) or not engine.ensure_context(MIN_CONTEXT).can_shift:
        stats = warm_whole_repository(root, settings, engine, on_progress, check)
        if stats is None:
            return WarmReport("retrieval", "page", skipped=RETRIEVAL_PAGES)
        return WarmReport.of(stats, "whole", time.monotonic() - began)
    repo = load_repository(root, settings)
    check()
    wanted = pieces_to_warm(repo, settings, Prompter(engine.model, engine.model_path), engine.model_path, check)
    if wanted.mode == "retrieval" and policy != "on":
        fits, why = kv_fits_cache(engine.model_path, settings, wanted.plan.repo_tokens)
        if policy == "off" or not fits:
            return WarmReport("retrieval", skipped=f"index_kv = {policy}" + ("" if policy == "off" else f": {why}"))
    if wanted.mode == "retrieval" and not settings.kv_pieces_retrieval:
        return WarmReport("retrieval", skipped="kv_pieces_retrieval = false: retrieved contexts are prefilled whole")
    context = engine.context
    if keep_in_memory and wanted.whole is not None and context is not None and context.n_ctx >= wanted.plan.context:
        stats = engine.load_context(wanted.whole.head, wanted.whole.pieces, settings, on_progress)
        return WarmReport.of(stats, "whole", time.monotonic() - began)
    return warm_pieces(engine, settings, wanted, on_progress, check)


def warm_after_index(root: Path, settings: Settings, on_progress: Progress | None = None) -> WarmReport:
    """`repochat index`'s last step, as the index_kv setting says: on, off, or auto (on where the repository's KV,
    counted from the index's token counts, fits kv_cache_size). auto never fails the index: a missing model or an
    empty repository is a reason given, not an error."""
    if settings.index_kv == "off":
        return WarmReport(skipped="index_kv = off")
    try:
        return _warm_after_index(root, settings, on_progress)
    except RepochatError as exc:
        if settings.index_kv == "on":
            raise
        return WarmReport(skipped=f"index_kv = auto: {exc}")


def _warm_after_index(root: Path, settings: Settings, on_progress: Progress | None) -> WarmReport:
    tokens = indexed_tokens(root, settings) if settings.index_kv == "auto" else 0
    if settings.index_kv == "auto" and not tokens:
        return WarmReport(skipped="index_kv = auto: no files indexed")
    model_path = resolve_model(settings, on_progress)
    if settings.index_kv == "auto":
        fits, why = kv_fits_cache(model_path, settings, tokens)
        if not fits:
            return WarmReport(skipped=f"index_kv = auto: {why}")
    with Engine(model_path, settings, on_progress) as engine:
        return warm_repository(root, settings, engine, on_progress, policy="on")


def indexed_tokens(root: Path, settings: Settings) -> int:
    """The indexed files' tokens (the index's estimate): the repository's size without tokenizing it again."""
    store = IndexStore.open(settings.index_path(root))
    return sum(store.column("files", "tokens", "status = 'indexed'"))


@dataclass
class RefreshState:
    """What the refresher is doing, for `index_status`."""

    state: str = "idle"  # idle | waiting (for the engine) | running | paused (gave way to a request)
    refreshes: int = 0  # refreshes that ran to the end
    pages_done: int = 0  # progress of the running refresh (pieces, or pages)
    pages_total: int = 0
    last: dict[str, Any] | None = None  # what the last finished refresh did (answer.kv_warm.WarmReport.as_dict)
    skipped: str = ""  # why the last one had nothing to do
    last_error: str = ""


class _GiveWay(Exception):
    """Raised between pages to stop a refresh: a request waits, newer changes arrived, or the refresher stops."""


class KvRefresher:
    """Warms the repository's KV (``warm_repository``) in a background thread each time ``request`` is called (pass
    it as the watcher's ``on_update``); requests arriving while it runs are coalesced into one more refresh."""

    def __init__(self, root: Path, settings: Settings, engine: Callable[[], Engine | None],
                 turns: EngineTurns | None = None, on_progress: Progress | None = None,
                 on_done: Callable[[RefreshState], None] | None = None) -> None:
        self.root = root
        self.settings = settings
        self.turns = turns or EngineTurns()
        self.state = RefreshState()
        self._engine = engine  # None while no model is loaded: nothing to keep warm then
        self._on_progress = on_progress
        self._on_done = on_done
        self._wake = threading.Condition()
        self._pending = False
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="repochat-kv-refresh", daemon=True)

    def start(self) -> KvRefresher:
        self._thread.start()
        return self

    def request(self, *_why: object) -> None:
        with self._wake:
            self._pending = True
            if self.state.state == "idle":
                self.state.state = "waiting"
            self._wake.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop at the next page (a write in progress completes) and end the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """True once no refresh is waiting or running."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    def status(self) -> dict[str, Any]:
        return asdict(self.state)

    def _run(self) -> None:
        while self._next():
            try:
                self._refresh_when_free()
            finally:
                with self._wake:
                    self._busy = False
                    if not self._pending:
                        self.state.state = "idle"
                    self._wake.notify_all()

    def _next(self) -> bool:
        """Wait for a request; False when stopping."""
        with self._wake:
            self._wake.wait_for(lambda: self._pending or self._stopping)
            if self._stopping:
                return False
            self._pending, self._busy = False, True
            return True

    def _refresh_when_free(self) -> None:
        while not self._stopping:
            with self.turns.background(_TURN_POLL_S) as granted:
                if not granted:
                    self.state.state = "waiting"
                    continue
                with self._wake:  # this refresh reads the repository as it is now: earlier changes are included
                    self._pending = False
                try:
                    self._refresh()
                except _GiveWay:
                    self._gave_way()
                return

    def _gave_way(self) -> None:
        """Stopped between pages: start over later (from the pages written so far) unless the refresher stops."""
        with self._wake:
            if not self._stopping:
                self._pending = True
                self.state.state = "paused" if self.turns.wanted() else "waiting"
        log.info("KV refresh paused after %d of %d pages", self.state.pages_done, self.state.pages_total)

    def _refresh(self) -> None:
        self.state.state, self.state.pages_done, self.state.pages_total = "running", 0, 0
        try:
            engine = self._engine()  # `repochat watch --warm-kv` loads the model here, the first time
            if engine is None:
                self.state.skipped = "no model loaded yet (the first ask loads it)"
                return
            report = warm_repository(self.root, self.settings, engine, self._page_done, self._give_way_if_asked,
                                     policy=self.settings.index_kv, keep_in_memory=True)
        except RepochatError as exc:
            self.state.last_error = str(exc)
            log.error("KV refresh failed: %s", exc)
            return
        except _GiveWay:
            raise
        except Exception as exc:  # the refresher must outlive one bad refresh (a file vanishing mid-read)
            self.state.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("KV refresh failed")
            return
        self._finished(report)

    def _finished(self, report: WarmReport) -> None:
        self.state.refreshes += 1
        self.state.last_error = ""
        self.state.skipped = report.skipped
        if not report.skipped:
            self.state.last = report.as_dict()
            log.info("KV %ss ready (%s mode): %d of %d computed (%d tokens) in %.2fs", report.kv_unit, report.mode,
                     report.computed, report.pieces, report.computed_tokens, report.seconds)
        if self._on_done:
            self._on_done(self.state)

    def _page_done(self, stage: str, done: int, total: int) -> None:
        """Progress of the engine after each page; the place where a refresh gives way."""
        self.state.pages_done, self.state.pages_total = done, total
        if self._on_progress:
            self._on_progress(stage, done, total)
        self._give_way_if_asked()

    def _give_way_if_asked(self) -> None:
        if self.turns.wanted() or self._pending or self._stopping:
            raise _GiveWay
