"""Planner decisions from real GGUF metadata: KV price, memory budget, context limit, effort."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_support import default_model_path, write_gguf_header
from repochat.config import Settings
from repochat.engine.gguf import read_gguf
from repochat.engine.planner import context_bucket, kv_shape, make_plan
from repochat.errors import ConfigError, ModelError

GIB = 1024**3


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_model_path(tmp_path_factory)


def test_kv_price_of_the_default_model(model_path: Path) -> None:
    # 24 layers x 2 KV heads x 64 dims x (K + V) x 2 bytes: the 12.3 KB/token measured in DESIGN.md
    plan = make_plan(model_path, 1000, Settings(memory=4 * GIB))
    assert plan.kv_bytes_per_token == 24 * 2 * 64 * 2 * 2
    assert plan.model_bytes == 491_400_064 and plan.model_context == 32768


def test_quantized_cache_is_cheaper(model_path: Path) -> None:
    f16 = make_plan(model_path, 1000, Settings(memory=4 * GIB, kv_type="f16")).kv_bytes_per_token
    q8 = make_plan(model_path, 1000, Settings(memory=4 * GIB, kv_type="q8_0")).kv_bytes_per_token
    q4 = make_plan(model_path, 1000, Settings(memory=4 * GIB, kv_type="q4_0")).kv_bytes_per_token
    assert q4 < q8 < f16 and abs(q8 / f16 - 34 / 64) < 0.01


def test_small_repository_goes_whole_with_room_for_the_answer(model_path: Path) -> None:
    settings = Settings(memory=4 * GIB, max_answer_tokens=300)
    plan = make_plan(model_path, 5000, settings)
    assert plan.mode == "whole"
    assert 5000 + 300 <= plan.context <= plan.model_context


def test_repository_beyond_the_model_context_uses_retrieval(model_path: Path) -> None:
    plan = make_plan(model_path, 40_000, Settings(memory=8 * GIB))
    assert plan.mode == "retrieval" and plan.retrieval_tokens > 0
    assert plan.context <= plan.model_context


def test_memory_budget_limits_the_context(model_path: Path) -> None:
    roomy = make_plan(model_path, 20_000, Settings(memory=8 * GIB))
    tight = make_plan(model_path, 20_000, Settings(memory=900 * 1024**2))  # model + ~150 MB of KV
    assert roomy.mode == "whole"
    assert tight.mode == "retrieval" and tight.context_limit < 20_000


def test_ctx_setting_caps_and_cannot_exceed_the_model(model_path: Path) -> None:
    assert make_plan(model_path, 10_000, Settings(memory=8 * GIB, ctx=8192)).mode == "retrieval"
    with pytest.raises(ConfigError, match="exceeds"):
        make_plan(model_path, 10_000, Settings(memory=8 * GIB, ctx=65536))


def test_model_bigger_than_budget_is_a_clear_error(model_path: Path) -> None:
    with pytest.raises(ModelError, match="memory budget"):
        make_plan(model_path, 1000, Settings(memory=300 * 1024**2))


def test_effort_levels(model_path: Path) -> None:
    settings = Settings(memory=8 * GIB)
    assert make_plan(model_path, 3000, settings, "low").mode == "retrieval"
    assert make_plan(model_path, 3000, settings, "high").mode == "whole"
    high = make_plan(model_path, 50_000, settings, "high")
    auto = make_plan(model_path, 50_000, settings, "auto")
    assert high.retrieval_tokens > auto.retrieval_tokens
    with pytest.raises(ConfigError):
        make_plan(model_path, 3000, settings, "extreme")


def test_context_bucket_has_no_cap_of_its_own_below_two_million() -> None:
    assert context_bucket(2_000_000, 10**8) >= 2_000_000
    assert 2_000_000 <= context_bucket(2_000_000, 2_097_152) <= 2_097_152  # the need, within the model's limit
    for needed in (100, 3000, 17_000, 300_000, 1_500_000):
        bucket = context_bucket(needed, 10**8)
        assert needed <= bucket <= max(2048, needed * 1.125)


def test_sliding_window_layers_cost_only_their_window(tmp_path: Path) -> None:
    # Gemma-3-like shape: 18 layers, every 6th global, window 512.
    path = write_gguf_header(tmp_path / "swa.gguf", {
        "general.architecture": "gemma3", "gemma3.block_count": 18, "gemma3.attention.head_count": 4,
        "gemma3.attention.head_count_kv": 1, "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256, "gemma3.attention.sliding_window": 512,
        "gemma3.embedding_length": 640, "gemma3.context_length": 32768,
    })
    shape = kv_shape(read_gguf(path))
    assert sum(shape.swa_layers) == 15
    per_layer_token = 1 * (256 + 256) * 2
    assert shape.bytes_for(10_000, swa_full=False) == per_layer_token * (3 * 10_000 + 15 * 512)
    assert shape.bytes_for(10_000, swa_full=True) == per_layer_token * 18 * 10_000


def test_per_layer_kv_heads_are_read(tmp_path: Path) -> None:
    path = write_gguf_header(tmp_path / "mixed.gguf", {
        "general.architecture": "llama", "llama.block_count": 3, "llama.attention.head_count": 8,
        "llama.attention.head_count_kv": [8, 2, 0], "llama.embedding_length": 512,
    })
    shape = kv_shape(read_gguf(path))
    assert shape.n_head_kv == (8, 2, 0) and shape.key_length == 64
    assert shape.bytes_per_token("f16") == (8 + 2) * 64 * 2 * 2


def test_plain_attention_scratch_is_priced(model_path: Path) -> None:
    # f16 on CPU runs without flash attention, whose score matrix costs memory per context token; with GPU layers
    # (flash attention) the same budget affords a longer context.
    tight = 1200 * 1024**2
    cpu = make_plan(model_path, 1000, Settings(memory=tight))
    gpu = make_plan(model_path, 1000, Settings(memory=tight, gpu_layers=99))
    assert cpu.context_limit < gpu.context_limit
