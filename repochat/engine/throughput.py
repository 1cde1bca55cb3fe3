"""How fast this machine prefills, so that a cold prefill can be priced before it starts.

Every prefill of a meaningful size (a KV page, a question of 64 tokens or more, the first-use probe's batch) leaves
a sample (tokens, start depth, seconds) in ``<cache_dir>/prefill-rates.json``, under a key made of what changes the
speed: the model file (name and size, so a copy of the same file shares its samples), the threads, the GPU layers,
llama.cpp's extra CPU buffers, the KV cache type and flash attention. The last ``KEEP`` samples of a key are kept.

Attention makes a token's cost grow with its depth, c(d) = a + b*d seconds, so n tokens prefilled after s others
cost a*n + b*(n*s + n*n/2). ``fit`` finds a, b >= 0 by least squares on the relative error of the samples (a 30 s
page and a 0.3 s question weigh the same). Samples that do not spread over depth cannot tell a from b; then b is
tied to a by ``DEPTH_RATIO``, measured on this project's machines (see the constant).

The store is a cache: a missing, corrupt or unwritable file only means no estimate (None), never an error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_atomic
from ..config import Settings
from .cpu import use_extra_buffers
from .planner import needs_flash_attention

STORE_FILE = "prefill-rates.json"
KEEP = 32  # samples per key: enough for a fit over many depths, few enough to follow a changed machine
MIN_SAMPLE_TOKENS = 64  # smaller decodes are dominated by fixed per-call costs, not by prefill speed
# b / a: the extra cost of a token per token of depth, relative to its cost at depth 0 (2e-4: a token at depth
# 5,000 costs twice one at depth 0). Fitted on 512-token pages timed from depth 0 to 8K, default model, 2-core
# AVX-512 machine (busy), repacked weights, f16 KV, plain attention: 1.8e-4 with 1 thread, 2.0e-4 with 2.
DEPTH_RATIO = 2.0e-4
MIN_DEPTH_SPREAD = 2048  # tokens of mean depth between samples before a and b are fitted separately
RATE_TOKENS = 1024  # measured_rate: tokens/s of a prefill of this size at the start of a context


@dataclass(frozen=True)
class RateKey:
    """What decides how fast a prefill runs here."""

    model: str  # file name
    size: int  # file size in bytes
    threads: int
    gpu_layers: int
    extra_buffers: bool
    kv_type: str
    flash_attn: bool

    def text(self) -> str:
        return (f"{self.model}:{self.size};threads={self.threads};gpu={self.gpu_layers};"
                f"extra={int(self.extra_buffers)};kv={self.kv_type};fa={int(self.flash_attn)}")

    def same_setup(self, other: RateKey) -> bool:
        """Same model, offload and cache: only the threads and the CPU buffer layout may differ."""
        return (self.model, self.size, self.gpu_layers, self.kv_type, self.flash_attn) == (
            other.model, other.size, other.gpu_layers, other.kv_type, other.flash_attn)


@dataclass(frozen=True)
class Sample:
    tokens: int
    start: int  # depth (tokens already in the context) where the prefill began
    seconds: float


@dataclass(frozen=True)
class CostModel:
    """Seconds per token at depth d: a + b*d."""

    a: float
    b: float

    def seconds(self, tokens: int, start: int = 0) -> float:
        return self.a * tokens + self.b * (tokens * start + tokens * tokens / 2)

    def rate(self, tokens: int = RATE_TOKENS, start: int = 0) -> float:
        return tokens / self.seconds(tokens, start)


def rate_key(settings: Settings, model_path: Path, threads: int, extra_buffers: bool) -> RateKey:
    """The key of prefills run with these settings on ``model_path``, ``threads`` and ``extra_buffers`` being the
    values actually used (threads=0 in the settings means "fitted to the load", resolved by the caller)."""
    path = Path(model_path)
    return RateKey(model=path.name, size=path.stat().st_size, threads=threads, gpu_layers=settings.gpu_layers,
                   extra_buffers=extra_buffers, kv_type=settings.kv_type,
                   flash_attn=needs_flash_attention(settings.kv_type, settings.gpu_layers))


# --- the store ---------------------------------------------------------------------------------------------------

def store_path(settings: Settings) -> Path:
    return Path(settings.cache_dir).expanduser() / STORE_FILE


def record(settings: Settings, key: RateKey, samples: Iterable[Sample]) -> None:
    """Add samples to the key's history (best effort: a store that cannot be written is left as it is)."""
    fresh = [s for s in samples if s.tokens >= MIN_SAMPLE_TOKENS and s.seconds > 0]
    if not fresh:
        return
    entries = _load(settings)
    entry = entries.setdefault(key.text(), {"key": asdict(key), "samples": []})
    entry["samples"] = (entry["samples"] + [[s.tokens, s.start, round(s.seconds, 6)] for s in fresh])[-KEEP:]
    _save(settings, entries)


def samples_for(settings: Settings, key: RateKey) -> list[Sample]:
    entry = _load(settings).get(key.text())
    return [Sample(*row) for row in entry["samples"]] if entry else []


def _load(settings: Settings) -> dict[str, dict[str, Any]]:
    """The entries that are well formed; an unreadable or corrupt file reads as empty."""
    try:
        data = json.loads(store_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    rates = data.get("rates") if isinstance(data, dict) else None
    if not isinstance(rates, dict):
        return {}
    return {text: entry for text, entry in rates.items() if _valid_entry(text, entry)}


def _valid_entry(text: str, entry: Any) -> bool:
    try:
        key = RateKey(**entry["key"])
        rows = entry["samples"]
        return key.text() == text and isinstance(rows, list) and all(_valid_row(row) for row in rows)
    except (TypeError, KeyError, AttributeError):
        return False


def _valid_row(row: Any) -> bool:
    return (isinstance(row, list) and len(row) == 3 and all(isinstance(v, (int, float)) for v in row)
            and row[0] > 0 and row[1] >= 0 and row[2] > 0)


def _save(settings: Settings, entries: dict[str, dict[str, Any]]) -> None:
    """Temp file + rename, so a reader never sees half a file; a failure leaves the old file as it was."""
    path = store_path(settings)
    text = json.dumps({"version": 1, "rates": entries}, indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode("utf-8"), prefix=STORE_FILE, suffix=".tmp")
    except OSError:
        pass


# --- the cost model ------------------------------------------------------------------------------------------------

def fit(samples: list[Sample]) -> CostModel | None:
    """a, b >= 0 minimizing the relative error of the predicted seconds; None without samples."""
    rows: list[tuple[float, float, float]] = [(s.tokens, s.tokens * s.start + s.tokens * s.tokens / 2, s.seconds) for s in samples]
    if not rows:
        return None
    depths = [quadratic / linear for linear, quadratic, _ in rows]  # each sample's mean depth
    if max(depths) - min(depths) < MIN_DEPTH_SPREAD:
        return _fit_with_ratio(rows, DEPTH_RATIO)
    # weighted normal equations of t = a*x + b*y, each row divided by its t (relative error)
    sxx = sum((x / t) ** 2 for x, _, t in rows)
    syy = sum((y / t) ** 2 for _, y, t in rows)
    sxy = sum(x * y / t ** 2 for x, y, t in rows)
    sx = sum(x / t for x, _, t in rows)
    sy = sum(y / t for _, y, t in rows)
    determinant = sxx * syy - sxy * sxy
    if determinant > 0:
        a = (sx * syy - sy * sxy) / determinant
        b = (sy * sxx - sx * sxy) / determinant
        if a >= 0 and b >= 0:
            return CostModel(a, b)
    # the unconstrained optimum left the quadrant (noise), so the constrained one lies on an edge: a or b is 0
    edges = [CostModel(sx / sxx, 0.0), CostModel(0.0, sy / syy)]
    return min(edges, key=lambda model: _relative_error(model, rows))


def _relative_error(model: CostModel, rows: list[tuple[float, float, float]]) -> float:
    return sum((model.a * x + model.b * y - t) ** 2 / t ** 2 for x, y, t in rows)


def _fit_with_ratio(rows: list[tuple[float, float, float]], ratio: float) -> CostModel:
    """t = a * (x + ratio*y): one unknown, fitted on relative error."""
    features = [(x + ratio * y) / t for x, y, t in rows]
    a = sum(features) / sum(f * f for f in features)
    return CostModel(a, a * ratio)


# --- what the planner and `status` ask ---------------------------------------------------------------------------

def cost_model(settings: Settings, model_path: Path) -> CostModel | None:
    """The fitted cost of prefills with these settings, from the closest measured setup: the same threads and CPU
    buffers first; else the nearest thread count, scaled by the thread ratio (prefill is compute-bound on CPU);
    None when nothing comparable was ever measured here."""
    from .llama import fitted_threads

    try:
        wanted = rate_key(settings, model_path, fitted_threads(settings.threads),
                          use_extra_buffers(settings.cpu_extra_buffers))
    except OSError:
        return None
    entries = [(RateKey(**entry["key"]), entry["samples"]) for entry in _load(settings).values()]
    candidates = [(key, rows) for key, rows in entries if key.same_setup(wanted) and rows]
    if not candidates:
        return None
    key, rows = min(candidates, key=lambda kr: (kr[0].extra_buffers != wanted.extra_buffers,
                                                abs(kr[0].threads - wanted.threads)))
    model = fit([Sample(*row) for row in rows])
    if model is None:
        return None
    scale = key.threads / wanted.threads if wanted.gpu_layers == 0 and key.threads and wanted.threads else 1.0
    return CostModel(model.a * scale, model.b * scale)


def estimate_prefill_seconds(settings: Settings, model_path: Path, tokens: int, start: int = 0) -> float | None:
    """Seconds to prefill ``tokens`` tokens after ``start`` tokens already in the context, on this machine with
    these settings; None when no prefill of this model was measured here yet."""
    return estimate_spans_seconds(settings, model_path, [(tokens, start)])


def estimate_spans_seconds(settings: Settings, model_path: Path, spans: list[tuple[int, int]]) -> float | None:
    """Seconds to prefill each (tokens, start) span in turn (pieces prefilled alone behind the head); None when no
    prefill of this model was measured here yet."""
    model = cost_model(settings, model_path)
    return None if model is None else sum(model.seconds(tokens, start) for tokens, start in spans)


def measured_rate(settings: Settings, model_path: Path) -> float | None:
    """Prefill tokens/s at the start of a context (the first RATE_TOKENS tokens), for display; None if unmeasured."""
    model = cost_model(settings, model_path)
    return None if model is None else model.rate()


def describe_seconds(seconds: float) -> str:
    """'40 s', '16 min', '2.5 h': how long, for a person."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
