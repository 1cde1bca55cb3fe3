"""Memory planner: whole repository in the context, or retrieval within a budget.

KV bytes per token come from the GGUF metadata (layers, KV heads, head sizes, cache type, sliding-window layers);
the budget is the user's --memory or a share of the RAM that is free now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError, ModelError
from .gguf import GGUFInfo, read_gguf
from .models import spec_for_path

# bytes per element of each KV cache type (q8_0: 32 values in 34 bytes, q4_0: 32 in 18)
KV_TYPE_BYTES: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# Every how many layers one is global (full attention) in sliding-window architectures whose GGUF does not say.
_SWA_PATTERN_DEFAULTS: dict[str, int] = {"gemma3": 6, "gemma3n": 5, "gemma2": 2, "cohere2": 4, "llama4": 4}
# The engine keeps full KV in sliding-window layers, because page deltas restored out of order would otherwise
# find those layers empty (DESIGN: "Facts about the dependencies").
SWA_FULL = True

FREE_RAM_SHARE = 0.6  # default budget: this share of MemAvailable
PROMPT_ROOM = 512  # tokens for the chat scaffolding and the question
LOW_EFFORT_TOKENS = 4096  # retrieval context at --effort low
UNKNOWN_MODEL_RETRIEVAL_TOKENS = 8192  # retrieval context at --effort auto for a model the benchmark has not seen
MIN_RETRIEVAL_TOKENS = 1024  # a slow machine still gets a few definitions
MIN_CONTEXT = 2048
_COMPUTE_OVERHEAD = 256 * 1024**2  # compute buffers, batch, logits
UBATCH = 512  # tokens per llama.cpp micro-batch (the context's n_batch = n_ubatch)


def needs_flash_attention(kv_type: str, gpu_layers: int) -> bool:
    """Flash attention only where it is needed or pays: a quantized V cache cannot work without it, and on a GPU it
    is the fast path. On CPU it is much slower here (default model, 2 cores, depth 8K: prefill 43 vs 69 tok/s, a
    32-token question 8.6 s vs 0.6 s), so f16 caches on CPU use the plain attention (whose larger scratch buffer
    the planner accounts for). The choice depends only on settings, never on the context size, because it is part
    of the page keys."""
    return kv_type != "f16" or gpu_layers > 0


@dataclass(frozen=True)
class KVShape:
    """Attention shape of a model, enough to price its KV cache."""

    n_layer: int
    n_head_kv: tuple[int, ...]  # per layer
    key_length: int
    value_length: int
    sliding_window: int  # 0 = none
    swa_layers: tuple[bool, ...]  # per layer: True if the layer attends only within the window
    n_head: int = 0  # query heads (the size of plain attention's score matrix)

    def bytes_for(self, n_tokens: int, kv_type: str = "f16", swa_full: bool = SWA_FULL) -> int:
        k_bytes = v_bytes = _type_bytes(kv_type)
        total = 0.0
        for layer in range(self.n_layer):
            kept = n_tokens
            if self.swa_layers[layer] and not swa_full:
                kept = min(n_tokens, self.sliding_window)
            total += kept * self.n_head_kv[layer] * (self.key_length * k_bytes + self.value_length * v_bytes)
        return int(total)

    def bytes_per_token(self, kv_type: str = "f16", swa_full: bool = SWA_FULL) -> int:
        """Marginal cost of one more token once the sliding windows are full."""
        return self.bytes_for(1, kv_type, True) if swa_full else self._global_bytes_per_token(kv_type)

    def scratch_bytes_per_token(self, flash_attn: bool) -> int:
        """Plain attention materialises a score matrix (f32, context x micro-batch x heads); flash attention
        does not."""
        return 0 if flash_attn else UBATCH * self.n_head * 4

    def _global_bytes_per_token(self, kv_type: str) -> int:
        per = _type_bytes(kv_type) * (self.key_length + self.value_length)
        return int(sum(self.n_head_kv[i] * per for i in range(self.n_layer) if not self.swa_layers[i]))


def _type_bytes(kv_type: str) -> float:
    if kv_type not in KV_TYPE_BYTES:
        raise ConfigError(f"unknown kv_type {kv_type!r} (use {', '.join(KV_TYPE_BYTES)})")
    return KV_TYPE_BYTES[kv_type]


def kv_shape(info: GGUFInfo) -> KVShape:
    """Read the attention shape from GGUF metadata."""
    n_layer = int(info.arch_value("block_count", 0))
    n_head = info.arch_value("attention.head_count", 0)
    if not n_layer or not n_head:
        raise ModelError(f"{info.path}: GGUF lacks {info.architecture}.block_count/attention.head_count")
    heads = _per_layer(n_head, n_layer)
    heads_kv = _per_layer(info.arch_value("attention.head_count_kv", n_head), n_layer)
    embedding = int(info.arch_value("embedding_length", 0))
    head_dim = embedding // max(heads) if embedding else 0
    key_length = int(info.arch_value("attention.key_length", head_dim))
    value_length = int(info.arch_value("attention.value_length", key_length))
    window = int(info.arch_value("attention.sliding_window", 0) or 0)
    return KVShape(n_layer, heads_kv, key_length, value_length, window, _swa_layers(info, n_layer, window), max(heads))


def _per_layer(value: int | list[int], n_layer: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, list) else (int(value),) * n_layer


def _swa_layers(info: GGUFInfo, n_layer: int, window: int) -> tuple[bool, ...]:
    if not window:
        return (False,) * n_layer
    pattern = info.arch_value("attention.sliding_window_pattern")
    if isinstance(pattern, list):  # newer GGUFs: one bool per layer
        return tuple(bool(v) for v in pattern)
    every = int(pattern or _SWA_PATTERN_DEFAULTS.get(info.architecture, 0))
    if not every:
        return (True,) * n_layer
    return tuple((layer + 1) % every != 0 for layer in range(n_layer))


@dataclass(frozen=True)
class Plan:
    mode: str  # "whole" | "retrieval"
    repo_tokens: int
    model_context: int  # the model's trained context limit
    context: int  # the context length to create
    kv_bytes_per_token: int
    budget_bytes: int
    model_bytes: int
    reason: str
    context_limit: int = 0  # max context allowed by model, --ctx and budget together
    answer_tokens: int = 0
    kv_type: str = "f16"
    retrieval_tokens: int = 0  # tokens of retrieved context to pack (retrieval mode)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (bytes), else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget(settings: Settings) -> int:
    return settings.memory or int(available_memory() * FREE_RAM_SHARE)


def context_bucket(tokens: int, limit: int) -> int:
    """Round a needed context up so that it changes rarely as a repository grows (page keys include it):
    powers of two, then steps of an eighth of the power of two, so at most 12.5% is allocated but unused."""
    size = MIN_CONTEXT
    while size < tokens:
        size *= 2
    if size > MIN_CONTEXT:
        step = size // 16
        size = -(-tokens // step) * step
    return min(size, limit)


def make_plan(model_path: Path, repo_tokens: int, settings: Settings, effort: str = "auto",
              whole_refused: str = "") -> Plan:
    """Decide how a question will be answered for a repository of ``repo_tokens`` tokens: the whole repository when
    it fits (unless low, or the caller refuses it, saying why in ``whole_refused``), else retrieval. auto retrieves
    the context size the model answers best with, cut to what this machine prefills in interactive_prefill_s."""
    if effort not in ("low", "auto", "high"):
        raise ConfigError(f"unknown effort {effort!r} (use low, auto or high)")
    info = read_gguf(model_path)
    shape = kv_shape(info)
    per_token = shape.bytes_per_token(settings.kv_type)
    model_context = int(info.arch_value("context_length", 0)) or 4096
    if settings.ctx > model_context:
        raise ConfigError(f"ctx {settings.ctx} exceeds the model's context length {model_context}")
    budget = memory_budget(settings)
    model_bytes = info.file_size
    kv_room = budget - model_bytes - _COMPUTE_OVERHEAD
    if kv_room <= per_token * MIN_CONTEXT:  # not even a small context fits
        raise ModelError(f"model needs about {_gib(model_bytes + _COMPUTE_OVERHEAD)} plus its KV cache, "
                         f"but the memory budget is {_gib(budget)} (raise --memory or pick a smaller model)")
    scratch = shape.scratch_bytes_per_token(needs_flash_attention(settings.kv_type, settings.gpu_layers))
    affordable = _tokens_affordable(shape, settings.kv_type, scratch, kv_room, model_context)
    limit = min(settings.ctx or model_context, affordable)
    room = PROMPT_ROOM + settings.max_answer_tokens
    plan = partial(Plan, repo_tokens=repo_tokens, model_context=model_context, kv_bytes_per_token=per_token,
                   budget_bytes=budget, model_bytes=model_bytes, context_limit=limit,
                   answer_tokens=settings.max_answer_tokens, kv_type=settings.kv_type)
    whole_fits = repo_tokens + room <= limit
    if effort != "low" and whole_fits and not whole_refused:
        return plan(mode="whole", context=context_bucket(repo_tokens + room, limit),
                    reason=f"repository ({repo_tokens:,} tokens) fits in {limit:,} tokens of context")
    retrieval = limit if effort == "high" else retrieval_tokens(model_path, settings, effort)
    context = max(min(retrieval + room, limit), min(MIN_CONTEXT, limit))
    if effort == "low":
        reason = "--effort low: retrieval with a small context"
    elif not whole_fits:
        reason = (f"repository ({repo_tokens:,} tokens) does not fit in {limit:,} tokens of context "
                  f"(model {model_context:,}, memory {_gib(budget)})")
    else:
        reason = f"repository ({repo_tokens:,} tokens) fits, but {whole_refused}"
    return plan(mode="retrieval", context=context, retrieval_tokens=max(context - room, 256), reason=reason)


def pieces_sound(model_path: Path, settings: Settings) -> bool:
    """Whether KV pieces (engine/pieces.py) are asked for and equivalent for this model: a piece computed alone
    sees all of itself, which a sliding-window layer (Gemma 3) would not, in a full prefill, past its window."""
    return settings.kv_pieces and not any(kv_shape(read_gguf(model_path)).swa_layers)


def answers_whole(model_path: Path) -> bool:
    """Whether the model answers better with the whole repository in the context than with a retrieved one: a
    registry model as the answer benchmark measured, a model given by path is trusted to use long contexts."""
    spec = spec_for_path(model_path)
    return spec.answers_whole if spec else True


def auto_refuses_whole(model_path: Path, settings: Settings, repo_tokens: int) -> str:
    """Why --effort auto keeps a repository of ``repo_tokens`` out of the context even where it fits ("" when it
    does not): the model answers worse with it, and the repository is bigger than its best retrieved context."""
    if answers_whole(model_path) or repo_tokens <= best_retrieval_tokens(model_path, settings):
        return ""
    return "this model answers better from a retrieved context (--effort high puts the whole repository in)"


def retrieval_tokens(model_path: Path, settings: Settings, effort: str) -> int:
    """Retrieved context for effort low or auto: the setting, else (low) a small context, else (auto) the size the
    model answers best with, as much of it as this machine prefills within interactive_prefill_s."""
    if effort == "low" and not settings.retrieval_tokens:
        return LOW_EFFORT_TOKENS
    best = best_retrieval_tokens(model_path, settings)
    return best if settings.retrieval_tokens else max(MIN_RETRIEVAL_TOKENS,
                                                      prefillable_tokens(model_path, settings, best))


def best_retrieval_tokens(model_path: Path, settings: Settings) -> int:
    """The retrieved context the model answers best with (the answer benchmark), or the setting."""
    spec = spec_for_path(model_path)
    return settings.retrieval_tokens or (spec.retrieval_tokens if spec else UNKNOWN_MODEL_RETRIEVAL_TOKENS)


def prefillable_tokens(model_path: Path, settings: Settings, most: int) -> int:
    """The most tokens (up to ``most``) a cold prefill finishes within interactive_prefill_s by this machine's
    measured speed; ``most`` when nothing is measured yet or the setting is 0 (no limit)."""
    from .throughput import cost_model

    speed = cost_model(settings, model_path)
    limit = settings.interactive_prefill_s
    if speed is None or not limit or speed.seconds(most, 0) <= limit:
        return most
    low, high = 0, most
    while low < high:  # the cost grows with the tokens: binary search
        middle = (low + high + 1) // 2
        if speed.seconds(middle, 0) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _tokens_affordable(shape: KVShape, kv_type: str, scratch_per_token: int, kv_room: int,
                       model_context: int) -> int:
    """Largest context whose KV cache and attention scratch fit in ``kv_room`` bytes (binary search: SWA layers
    make it non-linear)."""
    low, high = 0, model_context
    while low < high:
        middle = (low + high + 1) // 2
        if shape.bytes_for(middle, kv_type) + middle * scratch_per_token <= kv_room:
            low = middle
        else:
            high = middle - 1
    return low


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 1024**3:.1f} GiB"
