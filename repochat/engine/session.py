"""The engine a question runs on: a loaded model, one context, and the page chain currently held in it.

``load_prefix`` makes the context hold exactly a given sequence of pages, as cheaply as possible: pages already in
memory (same chain from an earlier ask in this process) are kept, the longest valid run of pages found on disk is
restored, and only the rest is prefilled, each new page's KV delta being written to the page store as soon as it is
computed (in a background thread, so the next page's prefill is not held up). ``generate`` then decodes the question
after the prefix and streams the answer.
"""

from __future__ import annotations

import codecs
import logging
import time
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..config import Settings
from ..errors import EngineError
from .context import SEQ_MAIN, ContextParams, LlamaContext, LlamaModel
from .planner import needs_flash_attention
from .models import check_adapter, model_fingerprint
from .pagestore import LoadStatus, PageStore, chain_keys
from .probe import checked_extra_buffers
from .throughput import MIN_SAMPLE_TOKENS, Sample, rate_key, record

log = logging.getLogger("repochat.engine")
Progress = Callable[[str, int, int], None]
TextSink = Callable[[str], None]


@dataclass
class PrefixStats:
    """How the prefix got into the context."""

    pages_total: int = 0
    pages_in_memory: int = 0
    pages_restored: int = 0
    pages_prefilled: int = 0
    pages_saved: int = 0
    memory_tokens: int = 0
    restored_tokens: int = 0
    prefilled_tokens: int = 0
    restore_seconds: float = 0.0
    prefill_seconds: float = 0.0
    notices: list[str] = field(default_factory=list)

    @property
    def cache(self) -> str:
        if not self.prefilled_tokens:
            return "hit"
        return "partial" if self.memory_tokens or self.restored_tokens else "miss"


@dataclass
class Generation:
    text: str
    tokens: int
    first_token_at: float  # time.monotonic() when the first answer token was sampled (0: none)
    stopped: str  # "end", "length" or "context"
    end: int = 0  # position after the last decoded token, where a continuation goes (the end of turn is not decoded)


def cache_identity(model_path: Path, settings: Settings) -> str:
    """Everything besides the tokens that decides the KV values: model, adapter, cache type, device."""
    lora = f"lora={model_fingerprint(check_adapter(Path(settings.lora)))};" if settings.lora else ""
    device = "gpu" if settings.gpu_layers else "cpu"
    params = ContextParams(n_ctx=0, kv_type=settings.kv_type,
                           flash_attn=needs_flash_attention(settings.kv_type, settings.gpu_layers))
    return f"model={model_fingerprint(model_path)};{lora}{params.cache_identity()};{device}"


def split_pages(tokens: list[int], page_tokens: int) -> list[list[int]]:
    return [tokens[start:start + page_tokens] for start in range(0, len(tokens), page_tokens)]


class Engine:
    """A loaded model plus a context that is created (and grown) on demand."""

    def __init__(self, model_path: Path, settings: Settings, progress: Progress | None = None) -> None:
        self.model_path = Path(model_path)
        self.settings = settings
        self.identity = cache_identity(self.model_path, settings)  # first: a bad adapter path fails fast
        self.extra_buffers = checked_extra_buffers(self.model_path, settings, progress)
        self.model = LlamaModel(self.model_path, gpu_layers=settings.gpu_layers, extra_buffers=self.extra_buffers)
        self.context: LlamaContext | None = None
        self._resident: list[str] = []  # keys of the pages that occupy the start of the main sequence

    def ensure_context(self, n_ctx: int) -> LlamaContext:
        if self.context is None or self.context.n_ctx < n_ctx:
            self.close_context()
            lora = Path(self.settings.lora) if self.settings.lora else None
            params = ContextParams(n_ctx=n_ctx, threads=self.settings.threads, kv_type=self.settings.kv_type,
                                   lora=lora, flash_attn=needs_flash_attention(self.settings.kv_type,
                                                                               self.settings.gpu_layers))
            self.context = LlamaContext(self.model, params)
        else:
            self.context.refit_threads()
        return self.context

    def load_prefix(self, pages: list[list[int]], store: PageStore,
                    on_progress: Progress | None = None) -> PrefixStats:
        """Make the main sequence hold exactly ``pages`` (and nothing after them), using and filling ``store``
        (which must have been opened with this engine's ``identity``)."""
        context = self._require_context()
        keys = chain_keys(self.identity, pages)
        starts = [0]
        for page in pages:
            starts.append(starts[-1] + len(page))
        stats = PrefixStats(pages_total=len(pages))
        kept = _common_prefix(self._resident, keys)
        context.seq_remove(SEQ_MAIN, starts[kept], -1)
        self._resident = keys[:kept]
        stats.pages_in_memory, stats.memory_tokens = kept, starts[kept]
        restored = self._restore(store, keys, kept, stats, on_progress)
        stats.restored_tokens = starts[restored] - starts[kept]
        self._prefill(store, pages, keys, starts, restored, stats, on_progress)
        store.touch(list(enumerate(keys)))
        return stats

    def reusable_tokens(self, pages: list[list[int]], store: PageStore) -> int:
        """Tokens at the start of ``pages`` that ``load_prefix`` would not prefill: pages still in memory, then pages
        whose checkpoint is on disk (a damaged one is only found when it is read, and then recomputed)."""
        keys = chain_keys(self.identity, pages)
        kept = _common_prefix(self._resident, keys) if self.context is not None else 0
        return sum(len(page) for page in pages[:store.present_run(keys, kept)])

    def _restore(self, store: PageStore, keys: list[str], first: int, stats: PrefixStats,
                 on_progress: Progress | None) -> int:
        """Restore pages first.. from disk while they exist and check out; returns the index of the first missing."""
        context = self._require_context()
        began = time.monotonic()
        index = first
        while index < len(keys):
            loaded = store.load(index, keys[index])
            if loaded.status is LoadStatus.CORRUPT:
                _notice(stats, f"KV checkpoint {index + 1} was damaged ({loaded.reason}); recomputing from there")
                break
            if loaded.status is LoadStatus.MISSING:
                break
            if not context.import_range(loaded.data):
                store.path(index, keys[index]).unlink(missing_ok=True)
                _notice(stats, f"KV checkpoint {index + 1} was rejected by llama.cpp; recomputing from there")
                break
            index += 1
            self._resident = keys[:index]
            if on_progress:
                on_progress("restore", index, len(keys))
        stats.pages_restored = index - first
        stats.restore_seconds = time.monotonic() - began
        return index

    def _prefill(self, store: PageStore, pages: list[list[int]], keys: list[str], starts: list[int], first: int,
                 stats: PrefixStats, on_progress: Progress | None) -> None:
        """Prefill pages first.. and write each page's delta; an interrupt keeps every page written so far."""
        context = self._require_context()
        began = time.monotonic()
        protect = set(keys)
        saving = True
        pending: Future[bool] | None = None
        timings: list[Sample] = []  # each page's prefill, for the planner's estimates (engine/throughput.py)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kv-pages") as writer, self._recording(timings):
            for index in range(first, len(pages)):
                page_began = time.monotonic()
                context.decode(pages[index], starts[index])
                self._resident = keys[:index + 1]
                stats.pages_prefilled += 1
                stats.prefilled_tokens += len(pages[index])
                if saving:
                    saving = self._collect(pending, stats)
                    pending = None
                if saving:
                    delta = context.export_range(starts[index], starts[index + 1])
                    pending = writer.submit(store.save, index, keys[index], len(pages[index]), delta, protect)
                timings.append(Sample(len(pages[index]), starts[index], time.monotonic() - page_began))
                if on_progress:
                    on_progress("prefill", index + 1, len(pages))
            if saving:
                self._collect(pending, stats)
        stats.prefill_seconds = time.monotonic() - began

    @contextmanager
    def _recording(self, timings: list[Sample]) -> Iterator[None]:
        """Remember the prefill times in ``timings`` when the block ends, even by an interrupt."""
        try:
            yield
        finally:
            self._remember(timings)

    def _remember(self, timings: list[Sample]) -> None:
        """Keep prefill times for the planner's estimates (those of a few tokens say little and are dropped)."""
        timings = [sample for sample in timings if sample.tokens >= MIN_SAMPLE_TOKENS]
        if timings and self.context is not None:
            try:
                key = rate_key(self.settings, self.model_path, self.context.threads, self.extra_buffers)
            except OSError:  # the model file went away under us: nothing to key the times by
                return
            record(self.settings, key, timings)

    @staticmethod
    def _collect(pending: Future[bool] | None, stats: PrefixStats) -> bool:
        """Wait for the previous page write; False (stop saving) when the cache is full or the disk fails."""
        if pending is None:
            return True
        try:
            if pending.result():
                stats.pages_saved += 1
                return True
            _notice(stats, "KV cache size limit reached: later pages are not saved (raise kv_cache_size)")
        except OSError as exc:
            _notice(stats, f"could not save KV pages: {exc}")
        return False

    def generate(self, tokens: list[int], start: int, max_tokens: int, on_text: TextSink | None = None) -> Generation:
        """Decode ``tokens`` after position ``start`` and sample greedily (temperature 0) until end of turn."""
        context = self._require_context()
        if start + len(tokens) >= context.n_ctx:
            raise EngineError(f"the question does not fit: {start + len(tokens):,} tokens, context {context.n_ctx:,}")
        began = time.monotonic()
        context.decode(tokens, start, logits_last=True)
        self._remember([Sample(len(tokens), start, time.monotonic() - began)])
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        position, pieces, first_at, stopped = start + len(tokens), [], 0.0, "length"
        generated = 0
        for _ in range(max_tokens):
            token = context.greedy_token()
            first_at = first_at or time.monotonic()
            if self.model.is_end(token):
                stopped = "end"
                break
            generated += 1
            piece = decoder.decode(self.model.piece(token))
            if piece:
                pieces.append(piece)
                if on_text:
                    on_text(piece)
            if position + 1 >= context.n_ctx:
                stopped = "context"
                break
            context.decode([token], position, logits_last=True)
            position += 1
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_text:
                on_text(tail)
        return Generation("".join(pieces), generated, first_at, stopped, position)

    def _require_context(self) -> LlamaContext:
        if self.context is None:
            raise EngineError("no context: call ensure_context first")
        return self.context

    def close_context(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None
        self._resident = []

    def close(self) -> None:
        self.close_context()
        self.model.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _common_prefix(left: list[str], right: list[str]) -> int:
    count = 0
    for a, b in zip(left, right):
        if a != b:
            break
        count += 1
    return count


def _notice(stats: PrefixStats, message: str) -> None:
    stats.notices.append(message)
    log.warning("%s", message)
