"""Embeddings from installed packages: the bundled MiniLM ONNX model and a GGUF model through llama.cpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from repochat.config import load_settings
from repochat.engine.models import resolve_model
from repochat.errors import ModelError
from repochat.index.embedder import GGUFEmbedder, MiniLMEmbedder, embedder_id, load_embedder

TEXTS = ["retry a failed job after a delay", "schedule the job again when it fails", "the colour of the sky at noon"]


def test_minilm_places_paraphrases_closer_than_unrelated_text() -> None:
    vectors = MiniLMEmbedder().embed(TEXTS)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_gguf_embedding_model_through_llama_cpp(tmp_path: Path) -> None:
    model = resolve_model(load_settings(tmp_path))
    embedder = load_embedder(str(model))
    assert isinstance(embedder, GGUFEmbedder) and embedder.model_id == embedder_id(str(model))
    vectors = embedder.embed(TEXTS + TEXTS[:1])
    assert vectors.shape == (4, embedder.dim) and embedder.dim > 100
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # a chat model is no embedding model, so only the mechanics are checked: same text, same vector; others differ
    assert vectors[0] @ vectors[3] > 0.9999 and vectors[0] @ vectors[2] < 0.999


def test_missing_gguf_embedding_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_embedder(str(tmp_path / "nope.gguf"))
