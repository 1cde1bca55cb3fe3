"""Thin seam over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

The high-level ``Llama`` class cannot be used: it fixes n_seq_max = 1 (page deltas need a second sequence) and sizes
its batch by n_ctx (gigabytes of sequence ids at 2M tokens). This module builds the context and one reusable batch
itself, and exposes exactly what the page store and the session need: tokenize, decode at a position, logits,
sequence copy/remove and per-sequence state get/set. Errors from llama.cpp become ModelError / EngineError here.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from ..errors import EngineError, ModelError
from .planner import UBATCH

log = logging.getLogger("repochat.llama")
SEQ_MAIN, SEQ_PAGE = 0, 1  # seq 0 holds the conversation; seq 1 is scratch for page deltas and lone pieces
SEQ_LINKS = tuple(range(2, 18))  # scratch for piece links recomputed side by side in one batch (engine/pieces.py)
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)
_LOG_ERROR = 3


@llama_cpp.llama_log_callback
def _log_sink(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    """llama.cpp logs to stderr by default; route it to logging and keep recent errors for our messages."""
    message = text.decode("utf-8", errors="replace").rstrip()
    if level == _LOG_ERROR and message:
        _recent_errors.append(message)
    log.debug(message)


_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        llama_cpp.llama_log_set(_log_sink, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


def _last_error() -> str:
    return f": {_recent_errors[-1]}" if _recent_errors else ""


_GGML_TYPES = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}


class LlamaModel:
    """Loaded weights and vocabulary."""

    def __init__(self, path: Path, gpu_layers: int = 0, vocab_only: bool = False,
                 extra_buffers: bool = False) -> None:
        """extra_buffers: let llama.cpp repack weights into its extra CPU buffer types (see engine/cpu.py)."""
        _init_backend()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        params.vocab_only = vocab_only
        params.use_extra_bufts = extra_buffers
        _recent_errors.clear()
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise ModelError(f"llama.cpp could not load {path}{_last_error()}")
        self.path = path
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.bos_id = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos_id = int(llama_cpp.llama_vocab_eos(self._vocab))
        self._adapters: list[object] = []

    @property
    def handle(self) -> object:
        return self._model

    def tokenize(self, text: str, add_special: bool = False, parse_special: bool = False) -> list[int]:
        """Model tokens of ``text``. parse_special=False keeps '<|im_start|>' inside a source file literal."""
        raw = text.encode("utf-8")
        capacity = len(raw) + 16
        buffer = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, capacity, add_special, parse_special)
        if count < 0:  # capacity too small: llama.cpp returns minus the needed size
            capacity = -count
            buffer = (llama_cpp.llama_token * capacity)()
            count = llama_cpp.llama_tokenize(self._vocab, raw, len(raw), buffer, capacity, add_special,
                                             parse_special)
        return list(buffer[:count])

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token; special=True renders control tokens ('<|im_end|>') as their text."""
        buffer = ctypes.create_string_buffer(64)
        length = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, 64, 0, special)
        if length < 0:
            buffer = ctypes.create_string_buffer(-length)
            length = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -length, 0, special)
        return buffer.raw[:length]

    def special_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def load_lora(self, path: Path) -> object:
        adapter = llama_cpp.llama_adapter_lora_init(self._model, str(path).encode())
        if not adapter:
            raise ModelError(f"llama.cpp could not load LoRA adapter {path}{_last_error()}")
        self._adapters.append(adapter)
        return adapter

    def close(self) -> None:
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None


def fitted_threads(requested: int = 0) -> int:
    """``requested``, or one thread per core that is idle now.

    llama.cpp's threads wait for each other at every layer, so on a busy machine one thread per core is far slower
    than fewer threads: measured here at load 8 on 2 cores, 10 generated tokens took 10.1 s with 2 threads and
    1.0 s with 1 (prefill was about equal)."""
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return cores
    return max(1, min(cores, math.ceil(cores - busy)))


@dataclass(frozen=True)
class ContextParams:
    n_ctx: int
    n_batch: int = UBATCH
    threads: int = 0  # 0 = all cores
    kv_type: str = "f16"
    swa_full: bool = True
    lora: Path | None = None
    flash_attn: bool = False

    def cache_identity(self) -> str:
        """The context parameters that change the KV values a prefill computes (part of every page key).

        n_ctx and n_batch are deliberately absent: pages exported from a 2K and a 4K context, or with batches of
        256 and 512, are byte-identical, and a page restored into a context of another size gives bit-identical
        logits (checked with the default model). Leaving them out keeps the cache valid as a repository grows.
        """
        return f"k={self.kv_type};v={self.kv_type};fa={int(self.flash_attn)};swa_full={int(self.swa_full)}"


class LlamaContext:
    """A context with two sequences sharing one unified KV cache, and one reusable batch."""

    def __init__(self, model: LlamaModel, params: ContextParams) -> None:
        self.model, self.params = model, params
        self._ctx, self._batch = None, None  # first: close() also runs (from __del__) when a later step fails
        # The adapter before the context: a file that is not an adapter then fails before anything is allocated.
        adapter = model.load_lora(params.lora) if params.lora else None
        cparams = llama_cpp.llama_context_default_params()
        threads = fitted_threads(params.threads)
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = params.n_ctx, params.n_batch, params.n_batch
        cparams.n_seq_max, cparams.kv_unified, cparams.swa_full = 2 + len(SEQ_LINKS), True, params.swa_full
        cparams.n_threads, cparams.n_threads_batch = threads, threads
        cparams.type_k = cparams.type_v = _GGML_TYPES[params.kv_type]
        cparams.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if params.flash_attn
                                   else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        cparams.no_perf = True
        _recent_errors.clear()
        self._ctx = llama_cpp.llama_init_from_model(model.handle, cparams)
        if not self._ctx:
            raise ModelError(f"could not create a context of {params.n_ctx:,} tokens{_last_error()}")
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        if adapter is not None:
            self._apply_lora(adapter)
        self._tokens = np.ctypeslib.as_array(self._batch.token, shape=(params.n_batch,))
        self._positions = np.ctypeslib.as_array(self._batch.pos, shape=(params.n_batch,))
        self._want_logits = np.ctypeslib.as_array(self._batch.logits, shape=(params.n_batch,))
        self._batch_seq = -1
        self._set_batch_seq(SEQ_MAIN)

    def _set_batch_seq(self, seq: int) -> None:
        """Make every batch slot belong to ``seq`` (rewritten only when the sequence changes)."""
        if seq != self._batch_seq:
            batch = self._live_batch()
            for i in range(self.params.n_batch):
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
            self._batch_seq = seq

    def _live_batch(self) -> llama_cpp.llama_batch:
        """The batch; after close() it is freed, and a decode says so rather than writing through a null pointer."""
        if self._batch is None:
            raise EngineError("the llama.cpp context is closed")
        return self._batch

    def refit_threads(self) -> None:
        """Follow the machine's load between questions when no thread count was given."""
        if not self.params.threads:
            threads = fitted_threads()
            llama_cpp.llama_set_n_threads(self._ctx, threads, threads)

    @property
    def threads(self) -> int:
        """The threads a batch decode runs on now (fitted to the load when none were asked for)."""
        return int(llama_cpp.llama_n_threads_batch(self._ctx))

    def _apply_lora(self, adapter: object) -> None:
        # llama_cpp's hints disagree with themselves: the adapter comes back as c_void_p while the array is typed as
        # holding POINTER(c_void_p); ctypes takes the address either way.
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)  # type: ignore[misc]
        scales = (ctypes.c_float * 1)(1.0)
        if llama_cpp.llama_set_adapters_lora(self._ctx, adapters, 1, scales) != 0:
            raise ModelError(f"could not apply LoRA adapter {self.params.lora}{_last_error()}")

    def decode(self, tokens: list[int], start: int, logits_last: bool = False, seq: int = SEQ_MAIN) -> None:
        """Append ``tokens`` to sequence ``seq`` at positions start, start+1, ... in batches of n_batch."""
        if start + len(tokens) > self.n_ctx:
            raise EngineError(f"context full: {start + len(tokens):,} tokens > {self.n_ctx:,}")
        self._set_batch_seq(seq)
        batch = self._live_batch()
        step = self.params.n_batch
        for offset in range(0, len(tokens), step):
            chunk = tokens[offset:offset + step]
            count = len(chunk)
            self._tokens[:count] = chunk
            self._positions[:count] = np.arange(start + offset, start + offset + count)
            self._want_logits[:count] = 0
            if logits_last and offset + count == len(tokens):
                self._want_logits[count - 1] = 1
            batch.n_tokens = count
            self._run_batch()

    def decode_side_by_side(self, parts: list[tuple[list[int], int, int]]) -> None:
        """Decode several (tokens, start, seq) parts in one batch, each appended to its own sequence; together at
        most n_batch tokens. One batch computes them at the cost of one pass over the weights."""
        count = sum(len(tokens) for tokens, _start, _seq in parts)
        if count > self.params.n_batch:
            raise EngineError(f"{count} tokens side by side exceed the batch of {self.params.n_batch}")
        batch = self._live_batch()
        slot = 0
        for tokens, start, seq in parts:
            for offset, token in enumerate(tokens):
                self._tokens[slot], self._positions[slot] = token, start + offset
                batch.seq_id[slot][0] = seq
                slot += 1
        self._batch_seq = -1  # the slots' sequences are mixed now
        self._want_logits[:count] = 0
        batch.n_tokens = count
        self._run_batch()

    def _run_batch(self) -> None:
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise EngineError(f"llama_decode failed with status {status}{_last_error()}")

    def last_logits(self) -> np.ndarray:
        """Logits of the last decoded token that asked for them (a copy)."""
        return self._logits_view().copy()

    def greedy_token(self) -> int:
        return int(np.argmax(self._logits_view()))

    def _logits_view(self) -> np.ndarray:
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, -1)
        if not pointer:
            raise EngineError("no logits: the last decode did not request them")
        return np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,))

    def pos_max(self, seq: int = SEQ_MAIN) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self._memory, seq))

    def seq_copy(self, source: int, target: int, start: int = -1, end: int = -1) -> None:
        llama_cpp.llama_memory_seq_cp(self._memory, source, target, start, end)

    def seq_remove(self, seq: int, start: int = -1, end: int = -1) -> None:
        if not llama_cpp.llama_memory_seq_rm(self._memory, seq, start, end):
            raise EngineError(f"could not remove positions {start}..{end} of sequence {seq}")

    @property
    def can_shift(self) -> bool:
        """Whether cached positions can be moved (RoPE models without a sliding window): pieces need it."""
        return bool(llama_cpp.llama_memory_can_shift(self._memory))

    def shift(self, seq: int, start: int, end: int, delta: int) -> None:
        """Move the cells of ``seq`` at positions [start, end) by ``delta``; llama.cpp corrects the keys' rotary
        embedding at the next decode."""
        llama_cpp.llama_memory_seq_add(self._memory, seq, start, end, delta)

    def export_range(self, start: int, end: int) -> bytearray:
        """Serialized KV cells of main-sequence positions [start, end): one page's delta."""
        self.seq_copy(SEQ_MAIN, SEQ_PAGE, start, end)
        try:
            return self.export_seq(SEQ_PAGE)
        finally:
            self.seq_remove(SEQ_PAGE)

    def export_seq(self, seq: int) -> bytearray:
        """Serialized KV cells of sequence ``seq``, at their positions."""
        size = llama_cpp.llama_state_seq_get_size(self._ctx, seq)
        data = bytearray(size)
        written = llama_cpp.llama_state_seq_get_data(self._ctx, (ctypes.c_uint8 * size).from_buffer(data), size, seq)
        if written != size:
            raise EngineError(f"state export wrote {written} of {size} bytes")
        return data

    def import_seq(self, data: bytearray, seq: int) -> bool:
        """Load cells written by export_seq into the empty sequence ``seq``; False if llama.cpp rejects them."""
        size = len(data)
        read = llama_cpp.llama_state_seq_set_data(self._ctx, (ctypes.c_uint8 * size).from_buffer(data), size, seq)
        if read == 0:
            self.seq_remove(seq)
            return False
        return True

    def import_range(self, data: bytearray) -> bool:
        """Append a page delta written by export_range to the main sequence; False if llama.cpp rejects it."""
        if not self.import_seq(data, SEQ_PAGE):
            return False
        self.seq_copy(SEQ_PAGE, SEQ_MAIN)
        self.seq_remove(SEQ_PAGE)
        return True

    def close(self) -> None:
        """Free the batch and the context; safe twice, and on a context whose __init__ stopped part-way."""
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def __del__(self) -> None:
        self.close()


TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])  # llama_token_data, as numpy sees it


class GrammarMask:
    """llama.cpp's grammar sampler (GBNF): sets the logit of every candidate token the grammar does not allow next
    to -inf, and follows the tokens chosen."""

    def __init__(self, model: LlamaModel, grammar: str, root: str = "root") -> None:
        vocab = llama_cpp.llama_model_get_vocab(model.handle)
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), root.encode())
        if not self._sampler:
            raise EngineError("llama.cpp rejected the output grammar")

    def apply(self, candidates: np.ndarray) -> None:
        """Mask, in place, the logits of ``candidates`` (an array of TOKEN_DATA) that the grammar forbids."""
        array = llama_cpp.llama_token_data_array(
            data=candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=len(candidates), selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(array))

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        if self._sampler:
            llama_cpp.llama_sampler_free(self._sampler)
            self._sampler = None

    def __del__(self) -> None:
        self.close()
