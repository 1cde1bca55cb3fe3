"""The engine a question runs on: a loaded model, one context, and the page chain currently held in it.

``load_prefix`` makes the context hold exactly a given sequence of pages, as cheaply as possible: pages already in
memory (same chain from an earlier ask in this process) are kept, the longest valid run of pages found on disk is
restored, and only the rest is prefilled, each new page's KV delta being written to the page store as soon as it is
computed (in a background thread, so the next page's prefill is not held up). ``load_pieces`` makes it hold a head
and a list of position-independent pieces instead (engine/pieces.py): each piece kept in memory, restored and
shifted into place, or prefilled alone and saved. ``generate`` then decodes the question after the prefix and
streams the answer.
"""

from __future__ import annotations

import codecs
import time
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from ..callbacks import Progress, TextSink
from ..config import Settings
from ..errors import EngineError
from .llama import SEQ_MAIN, ContextParams, LlamaContext, LlamaModel
from .planner import needs_flash_attention, pieces_sound
from .models import check_adapter, model_fingerprint
from .pagestore import LoadStatus, PageStore, chain_keys
from .pieces import (LINK_INDEX, PIECE_INDEX, Placement, compute_piece, missing_links, piece_store_identity,
                     relink_pieces, restore_links, restore_piece)
from .probe import checked_extra_buffers
from .reports import Generation, PrefixStats, notice
from .throughput import MIN_SAMPLE_TOKENS, Sample, rate_key, record



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

    def load_context(self, head: list[int], pieces: list[list[int]], settings: Settings,
                     on_progress: Progress | None = None) -> PrefixStats:
        """Make the main sequence hold ``head`` then ``pieces``: as position-independent pieces where ``settings``
        ask for them and the model's cache can shift positions, else as prefix pages."""
        if self._uses_pieces(settings):
            return self.load_pieces(head, pieces, self.store(settings, pieces=True), on_progress,
                                    settings.piece_link_tokens)
        stats = self.load_prefix(split_pages(_joined(head, pieces), settings.page_tokens), self.store(settings),
                                 on_progress)
        if settings.kv_pieces:
            notice(stats, "this model's KV cache cannot place cached pieces elsewhere (a sliding attention window, "
                           "or positions that cannot shift): prefix pages instead, reusable behind the same prefix")
        return stats

    def _uses_pieces(self, settings: Settings) -> bool:
        """Pieces where asked for and sound: a piece computed alone is only equivalent when every layer could see
        its whole context (no sliding window) and llama.cpp can move cached positions (assumed before a context
        exists to ask)."""
        return pieces_sound(self.model_path, settings) and (self.context is None or self.context.can_shift)

    def prefill_spans(self, head: list[int], pieces: list[list[int]], settings: Settings) -> list[tuple[int, int]]:
        """(tokens, start) of each prefill ``load_context`` would run now: the pieces neither in memory nor on disk,
        each behind the head (pieces mode, assumed until a context says the cache cannot shift); or the pages after
        the longest reusable prefix."""
        if self._uses_pieces(settings):
            placement = Placement.of(self.identity, head, pieces)
            kept = _common_prefix(self._resident, placement.keys) if self.context is not None else 0
            store = self.store(settings, pieces=True)
            done = [unit < kept or store.exists(PIECE_INDEX, key) for unit, key in enumerate(placement.keys)]
            links = missing_links(placement, store, kept, settings.piece_link_tokens)
            return placement.prefill_spans(done, links, settings.piece_link_tokens)
        tokens = _joined(head, pieces)
        reused = self.reusable_tokens(split_pages(tokens, settings.page_tokens), self.store(settings))
        return [(len(tokens) - reused, reused)] if len(tokens) > reused else []

    def store(self, settings: Settings, pieces: bool = False) -> PageStore:
        """The page store of this engine's cache identity in ``settings``' cache (its pieces or its prefix pages)."""
        identity = piece_store_identity(self.identity) if pieces else self.identity
        return PageStore(Path(settings.cache_dir), identity, settings.kv_cache_size)

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

    def load_pieces(self, head: list[int], pieces: list[list[int]], store: PageStore,
                    on_progress: Progress | None = None, link_tokens: int = 0) -> PrefixStats:
        """Make the main sequence hold ``head`` then ``pieces`` (and nothing after them), each piece's KV computed
        alone behind the head (engine/pieces.py). The leading units still in memory from the last context stay;
        each other one is restored from ``store`` and shifted into place, or prefilled alone and saved there.
        Then the first ``link_tokens`` of each piece after the first are recomputed, seeing the pieces before it.
        ``store`` must have been opened with ``piece_store_identity(identity)``."""
        context = self._require_context()
        placement = Placement.of(self.identity, head, pieces)
        units = [head, *pieces]
        stats = PrefixStats(unit="piece", pages_total=len(units))
        kept = _common_prefix(self._resident, placement.keys)
        context.seq_remove(SEQ_MAIN, placement.starts[kept], -1)
        self._resident = placement.keys[:kept]
        stats.pages_in_memory, stats.memory_tokens = kept, placement.starts[kept]
        protect = set(placement.keys)
        saving, pending = True, None
        timings: list[Sample] = []
        unlinked = max(kept, 2) if link_tokens else len(units)  # units from here on are resident once linked
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kv-pieces") as writer, self._recording(timings):
            for unit in range(kept, len(units)):
                began = time.monotonic()
                if self._restore_unit(store, placement, unit, stats):
                    stats.pages_restored += 1
                    stats.restored_tokens += placement.length(unit)
                    stats.restore_seconds += time.monotonic() - began
                else:
                    data = self._compute_unit(units, placement, unit)
                    elapsed = time.monotonic() - began
                    stats.pages_prefilled += 1
                    stats.prefilled_tokens += placement.length(unit)
                    stats.prefill_seconds += elapsed
                    timings.append(Sample(placement.length(unit), placement.starts[1] if unit else 0, elapsed))
                    saving = saving and self._collect(pending, stats)
                    pending = writer.submit(store.save, PIECE_INDEX, placement.keys[unit], placement.length(unit),
                                            data, protect) if saving else None
                self._resident = placement.keys[:min(unit + 1, unlinked)]
                if on_progress:
                    on_progress("pieces", unit + 1, len(units))
            if saving:
                self._collect(pending, stats)
        links = self._link(units, placement, store, unlinked, link_tokens, stats)
        store.touch([(PIECE_INDEX, key) for key in placement.keys] + [(LINK_INDEX, key) for key in links])
        return stats

    def _link(self, units: list[list[int]], placement: Placement, store: PageStore, first: int, tokens: int,
              stats: PrefixStats) -> list[str]:
        """The boundary fix: the first ``tokens`` of units first.., computed alone, are replaced by their saved link
        with the unit before, or recomputed behind the pieces before them and saved (on the demo, 32 tokens took
        the next-token KL against a full prefill from 1.36 to 0.14); then every unit is resident. Returns the
        links' keys."""
        began = time.monotonic()
        context = self._require_context()
        keys = {unit: placement.link_key(unit, tokens) for unit in placement.link_units(first, tokens)}
        missing = self._restore_links(store, placement, keys, tokens, stats)
        cells = relink_pieces(context, [(units[unit][:tokens], placement.starts[unit]) for unit in missing])
        protect = set(placement.keys) | set(keys.values())
        for unit, data in zip(missing, cells):
            store.save(LINK_INDEX, keys[unit], placement.link_length(unit, tokens), data, protect)
        stats.links_restored += len(keys) - len(missing)
        stats.link_tokens += sum(placement.link_length(unit, tokens) for unit in missing)
        stats.link_seconds += time.monotonic() - began
        self._resident = list(placement.keys)
        return list(keys.values())

    def _restore_links(self, store: PageStore, placement: Placement, keys: dict[int, str], tokens: int,
                       stats: PrefixStats) -> list[int]:
        """Put the saved links of ``keys`` (unit: link key) in place; returns the units whose link is missing,
        damaged or rejected, to recompute."""
        loaded = {unit: store.load(LINK_INDEX, key) for unit, key in keys.items()}
        for result in loaded.values():
            if result.status is LoadStatus.CORRUPT:
                notice(stats, f"a saved KV link was damaged ({result.reason}); recomputing it")
        found = {unit: result.data for unit, result in loaded.items() if result.data is not None}
        accepted = restore_links(self._require_context(), [(data, placement.link_length(unit, tokens),
                                                             placement.starts[unit]) for unit, data in found.items()])
        for unit, ok in zip(found, accepted):
            if not ok:
                store.path(LINK_INDEX, keys[unit]).unlink(missing_ok=True)
                notice(stats, "a saved KV link was rejected by llama.cpp; recomputing it")
        restored = {unit for unit, ok in zip(found, accepted) if ok}
        return [unit for unit in keys if unit not in restored]

    def _restore_unit(self, store: PageStore, placement: Placement, unit: int, stats: PrefixStats) -> bool:
        """Restore a saved unit into place; False (to compute it) when it is missing, damaged or rejected."""
        context = self._require_context()
        loaded = store.load(PIECE_INDEX, placement.keys[unit])
        if loaded.status is LoadStatus.CORRUPT:
            notice(stats, f"KV piece {unit} was damaged ({loaded.reason}); recomputing it")
        if loaded.data is None:
            return False
        if unit == 0:
            accepted = context.import_range(loaded.data)
        else:
            accepted = restore_piece(context, loaded.data, placement.starts[1], placement.length(unit),
                                     placement.starts[unit])
        if not accepted:
            store.path(PIECE_INDEX, placement.keys[unit]).unlink(missing_ok=True)
            notice(stats, f"KV piece {unit} was rejected by llama.cpp; recomputing it")
        return accepted

    def _compute_unit(self, units: list[list[int]], placement: Placement, unit: int) -> bytearray:
        """Prefill a unit (the head in place; a piece alone, then shifted into place); returns its cells."""
        context = self._require_context()
        if unit == 0:
            context.decode(units[0], 0)
            return context.export_range(0, placement.starts[1])
        return compute_piece(context, units[unit], placement.starts[1], placement.starts[unit])

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
                notice(stats, f"KV checkpoint {index + 1} was damaged ({loaded.reason}); recomputing from there")
                break
            if loaded.status is LoadStatus.MISSING or loaded.data is None:  # data is None only when missing
                break
            if not context.import_range(loaded.data):
                store.path(index, keys[index]).unlink(missing_ok=True)
                notice(stats, f"KV checkpoint {index + 1} was rejected by llama.cpp; recomputing from there")
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
            self.remember(timings)

    def remember(self, timings: list[Sample]) -> None:
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
            notice(stats, "KV cache size limit reached: later pages are not saved (raise kv_cache_size)")
        except OSError as exc:
            notice(stats, f"could not save KV pages: {exc}")
        return False

    def generate(self, tokens: list[int], start: int, max_tokens: int, on_text: TextSink | None = None) -> Generation:
        """Decode ``tokens`` after position ``start`` and sample greedily (temperature 0) until end of turn."""
        context = self._require_context()
        if start + len(tokens) >= context.n_ctx:
            raise EngineError(f"the question does not fit: {start + len(tokens):,} tokens, context {context.n_ctx:,}")
        began = time.monotonic()
        context.decode(tokens, start, logits_last=True)
        self.remember([Sample(len(tokens), start, time.monotonic() - began)])
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

    def drop_after(self, position: int) -> None:
        """Forget what the main sequence holds from ``position`` on (a question or review after a cached prefix);
        the prefix stays for the next ask in this process."""
        if self.context is not None:
            self.context.seq_remove(SEQ_MAIN, position, -1)

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


def _joined(head: list[int], pieces: list[list[int]]) -> list[int]:
    return [token for part in (head, *pieces) for token in part]
