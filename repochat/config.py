"""Settings, resolved as: command-line flags > REPOCHAT_* environment > repochat.toml / [tool.repochat] > defaults."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import platformdirs

from .errors import ConfigError

if TYPE_CHECKING:
    from .index.location import IndexDir

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
               "t": 1024**4, "tb": 1024**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(value: str | int) -> int:
    """'512MB', '8g', '1.5GiB' or a plain number of bytes -> bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"not a size: {value!r} (use e.g. 800KB, 512MB, 8GB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class Settings:
    """Everything a command may be told. Field names are the config keys (``max_file_size`` -> REPOCHAT_MAX_FILE_SIZE)."""

    index_dir: str = ""  # default: <root>/.repochat
    index_uri: str = ""  # s3://bucket/prefix: the index in object storage (AWS_* variables); wins over index_dir
    index_read_only: bool = False  # read the index, never update it (readers of an index a CI job builds)
    cache_dir: str = field(default_factory=lambda: platformdirs.user_cache_dir("repochat"))
    max_file_size: int = 1024 * 1024  # bytes; larger files are skipped and counted
    embeddings: bool = True  # compute chunk vectors (slow on CPU) for hybrid search
    embedding_model: str = "minilm"  # "minilm" (bundled ONNX) or a path to a GGUF embedding model
    model: str = "default"  # a name from `repochat models` or a path to a GGUF file
    lora: str = ""
    memory: int = 0  # bytes for model + KV cache; 0 = a share of free RAM
    ctx: int = 0  # context length; 0 = what the plan and the model allow
    kv_type: str = "f16"  # f16, q8_0 or q4_0
    page_tokens: int = 1024  # tokens per KV page
    # the KV of each file or excerpt computed once, alone, and shifted into place in any context (engine/pieces.py);
    # false (or a model whose cache cannot shift): prefix pages, reusable only behind the same prefix
    kv_pieces: bool = True
    # pieces: the first tokens of each piece recomputed after assembly, seeing the pieces before it (the boundary
    # fix of EPIC); 0 = none. On the demo 32 took the next-token KL against a full prefill from 1.36 to 0.14
    piece_link_tokens: int = 32
    # retrieved excerpts as pieces too; off: a retrieved context is prefilled in one pass (prefix pages). On the
    # answer benchmark's free answers, assembled excerpts were right 3 of 20 times against 8 with one prefill
    kv_pieces_retrieval: bool = False
    kv_cache_size: int = 20 * 1024**3  # bytes of KV pages kept on disk before LRU eviction
    # `repochat index` (and the watcher's retrieval-mode refresh) then computes the KV pieces asks will use
    # (repochat.answer.kv_warm): on, off, or auto = on when the repository's KV (tokens x KV bytes per token) fits
    # kv_cache_size
    index_kv: str = "auto"
    gpu_layers: int = 0
    threads: int = 0  # 0 = one thread per idle core (fitted to the machine's load)
    max_answer_tokens: int = 512
    # end each answer with "Sources:" and 1-3 citations the model picks among the spans in the context (a grammar
    # allows nothing else), so every answer cites something valid; a few more decode steps (repochat.answer.sources)
    sources: bool = True
    # a question asking which function or which files starts its answer with the best-ranked candidate (retrieved,
    # or ranked by the index with the whole repository in the context), shown before the prefill; then the model
    # goes on freely (repochat.answer.pick)
    pick: bool = True
    # tokens of retrieved context in retrieval mode; 0 = the size the answer benchmark says the model answers best
    # with, cut to what this machine prefills within interactive_prefill_s (engine/planner.py)
    retrieval_tokens: int = 0
    # --effort auto: a whole-repository or retrieval prefill estimated to take longer than this is not started
    # unasked (the prefill speed measured on this machine, engine/throughput.py); 0 = no limit
    interactive_prefill_s: float = 30.0
    fail_on: str = "error"  # review: error, warning, info or never
    review_skip: tuple[str, ...] = ()  # review: gitignore-style patterns of paths not to review
    max_diff_lines: int = 2000  # review: above this, only the most important files are reviewed
    # review: whole-repository mode (after the KV pages `ask` caches) only when at most this many tokens need
    # prefilling (the review part and the pages from the first changed file on); else the small retrieval prompt
    review_whole_max_prefill: int = 2048  # ~30 s of prefill deep in a context on 2 busy cores: the hook stays under a minute
    # whole-repository mode: files changed since the context was laid out are appended after it (the KV pages of the
    # rest stay valid) until their superseded copies pass this share of the context; 0 lays it out afresh every time
    max_stale_share: float = 0.35
    # llama.cpp's extra CPU buffer types (AMX, repacked weights): auto = on unless the CPU has AMX, whose path
    # crashes in llama.cpp (engine/cpu.py)
    cpu_extra_buffers: str = "auto"
    # a remote OpenAI-compatible engine ("http://host:8080/v1": llama-server, vLLM, ...) instead of the local model;
    # its API key comes from REPOCHAT_API_KEY or OPENAI_API_KEY (engine/remote.py)
    engine: str = ""
    engine_model: str = ""  # the model name the server is asked for; "" = the first it lists
    engine_context: int = 0  # its context in tokens; 0 = what the server reports
    engine_timeout: float = 900.0  # seconds the server may stay silent (a cold whole-repository prefill) before giving up

    def index_path(self, root: Path) -> IndexDir:
        """<root>/.repochat, or index_dir (a relative one is taken from the repository root, not the cwd), or the
        index_uri prefix (an ObjectFolder, repochat/index/location.py)."""
        if self.index_uri:
            from .index.location import ObjectFolder
            return ObjectFolder.of(self.index_uri)
        return root / Path(self.index_dir).expanduser() if self.index_dir else root / ".repochat"


_SIZE_KEYS = {"max_file_size", "memory", "kv_cache_size"}
_SHARE_KEYS = {"max_stale_share"}  # fractions of a whole: 0 to 1
# The smallest value each number may take (a page of fewer tokens than a short line is a mistake, not a choice).
_MINIMUMS = {"max_file_size": 1, "memory": 0, "ctx": 0, "page_tokens": 16, "kv_cache_size": 0, "gpu_layers": -1,
             "threads": 0, "max_answer_tokens": 1, "max_diff_lines": 1, "review_whole_max_prefill": 0,
             "retrieval_tokens": 0, "interactive_prefill_s": 0, "piece_link_tokens": 0, "engine_context": 0,
             "engine_timeout": 0.001}
_AUTO_ON_OFF = ("auto", "on", "off")
CHOICES = {"kv_type": ("f16", "q8_0", "q4_0"), "fail_on": ("error", "warning", "info", "never"),
           "cpu_extra_buffers": _AUTO_ON_OFF, "index_kv": _AUTO_ON_OFF}


def _auto_on_off(value: Any) -> str:
    """auto, on or off; a TOML boolean (index_kv = true) or its usual spellings mean on or off."""
    word = str(value).lower()
    return "on" if word in ("true", "1", "yes", "on") else "off" if word in ("false", "0", "no", "off") else word


def _coerce(name: str, kind: Any, value: Any) -> Any:
    try:
        if name in _SIZE_KEYS:
            return parse_size(value)
        if CHOICES.get(name) == _AUTO_ON_OFF:
            return _auto_on_off(value)
        if kind == "bool" or kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int" or kind is int:
            return int(value)
        if name in _SHARE_KEYS:
            return _share(name, float(value))
        if kind == "float" or kind is float:
            return float(value)
        if str(kind).startswith("tuple"):
            return tuple(value) if isinstance(value, (list, tuple)) else tuple(s for s in str(value).split(",") if s)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {name}: {value!r}") from exc


def _share(name: str, value: float) -> float:
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be between 0 and 1, not {value}")
    return value


def _file_settings(root: Path) -> dict[str, Any]:
    """[tool.repochat] in pyproject.toml, then repochat.toml (which wins)."""
    found: dict[str, Any] = {}
    for name, table in (("pyproject.toml", ("tool", "repochat")), ("repochat.toml", ())):
        path = root / name
        if not path.is_file():
            continue
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        for key in table:
            data = data.get(key, {}) if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [{'.'.join(table)}] must be a table of settings, not {data!r}")
        found.update({k.replace("-", "_"): v for k, v in data.items()})
    return found


def load_settings(root: Path, overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings for a repository root. ``overrides`` are flags; None values mean 'not given'."""
    environ = os.environ if environ is None else environ
    known = {f.name: f.type for f in fields(Settings)}
    merged: dict[str, Any] = {}
    for key, value in _file_settings(root).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r} in config (known: {', '.join(sorted(known))})")
        merged[key] = value
    for key in known:
        env_value = environ.get(f"REPOCHAT_{key.upper()}")
        if env_value is not None:
            merged[key] = env_value
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    values = {k: _coerce(k, known[k], v) for k, v in merged.items()}
    for key, value in values.items():
        _check_range(key, value)
    return dataclasses.replace(Settings(), **values)


def _check_range(name: str, value: Any) -> None:
    if name in _MINIMUMS and value < _MINIMUMS[name]:
        raise ConfigError(f"{name} must be at least {_MINIMUMS[name]}, not {value}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"{name} must be one of {', '.join(CHOICES[name])}, not {value!r}")
