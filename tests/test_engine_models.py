"""Model assembly from installed packages, sha256 verification, GGUF metadata and loader errors."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import llama_cpp
import pytest

from engine_support import default_model_path, write_gguf_header
from repochat.config import Settings
from repochat.engine import models
from repochat.engine.llama import LlamaModel
from repochat.engine.gguf import read_gguf
from repochat.engine.models import REGISTRY, ensure_assembled, list_models, resolve_model
from repochat.errors import ModelError

DEFAULT_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_model_path(tmp_path_factory)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 23):
            digest.update(block)
    return digest.hexdigest()


def test_default_model_is_assembled_from_packages_and_verified(model_path: Path) -> None:
    assert model_path.stat().st_size == 491_400_064
    assert _sha256(model_path) == DEFAULT_SHA256


def test_second_resolve_trusts_the_stamp_instead_of_rehashing(model_path: Path, monkeypatch) -> None:
    def no_hashing(_path: Path) -> str:
        raise AssertionError("re-hashed a verified model")

    monkeypatch.setattr(models, "sha256_file", no_hashing)
    settings = Settings(cache_dir=str(model_path.parent.parent))
    assert resolve_model(settings) == model_path


def test_corrupt_copy_is_detected_and_reassembled(tmp_path: Path) -> None:
    directory = tmp_path / "models"
    path = ensure_assembled(REGISTRY[0], directory)
    with path.open("r+b") as handle:  # flip one byte in the tensor data, keeping the size
        handle.seek(300_000_000)
        original = handle.read(1)
        handle.seek(300_000_000)
        handle.write(bytes([original[0] ^ 0xFF]))
    assert _sha256(path) != DEFAULT_SHA256
    repaired = ensure_assembled(REGISTRY[0], directory)
    assert _sha256(repaired) == DEFAULT_SHA256


def test_wrong_checksum_fails_and_leaves_no_file(tmp_path: Path) -> None:
    spec = dataclasses.replace(REGISTRY[0], sha256="0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        ensure_assembled(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_uninstalled_extra_is_reported_with_its_install_hint(tmp_path: Path) -> None:
    spec = dataclasses.replace(REGISTRY[0], part_modules=("repochat_no_such_part_module",), extra="some-extra")
    with pytest.raises(ModelError, match=r"repochat\[some-extra\]"):
        ensure_assembled(spec, tmp_path)


def test_list_models_reports_registry_and_a_path_model(model_path: Path) -> None:
    settings = Settings(cache_dir=str(model_path.parent.parent), model=str(model_path))
    found = {info.name: info for info in list_models(settings)}
    assert {"default", "coder-1.5b", "gemma-270m"} <= set(found)
    assert found["default"].installed and found["default"].path == model_path
    assert found["default"].license == "Apache-2.0"
    path_entries = [info for info in found.values() if info.path == model_path and info.name != "default"]
    assert path_entries and path_entries[0].context_length == 32768


def test_gguf_metadata_matches_what_llama_cpp_reports(model_path: Path) -> None:
    info = read_gguf(model_path)
    model = LlamaModel(model_path)
    try:
        handle = model.handle
        assert info.arch_value("block_count") == llama_cpp.llama_model_n_layer(handle)
        assert info.arch_value("attention.head_count") == llama_cpp.llama_model_n_head(handle)
        assert info.arch_value("attention.head_count_kv") == llama_cpp.llama_model_n_head_kv(handle)
        assert info.arch_value("embedding_length") == llama_cpp.llama_model_n_embd(handle)
        assert info.arch_value("context_length") == llama_cpp.llama_model_n_ctx_train(handle)
        assert info.tensor_count > 0 and info.data_end == info.file_size
        assert "<|im_start|>" in info.get("tokenizer.chat_template")
    finally:
        model.close()


def test_missing_model_path_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model not found") as caught:
        resolve_model(Settings(cache_dir=str(tmp_path), model=str(tmp_path / "nope.gguf")))
    assert "\n" not in str(caught.value)


def test_not_a_gguf_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_model(Settings(cache_dir=str(tmp_path), model=str(bogus)))


def test_truncated_gguf_is_rejected(model_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with model_path.open("rb") as source:
        cut.write_bytes(source.read(50_000_000))
    with pytest.raises(ModelError, match="truncated"):
        resolve_model(Settings(cache_dir=str(tmp_path), model=str(cut)))


def test_header_only_gguf_cut_inside_its_metadata_is_rejected(model_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with model_path.open("rb") as source:
        cut.write_bytes(source.read(2000))
    with pytest.raises(ModelError, match="truncated"):
        read_gguf(cut)


def test_gguf_llama_cpp_cannot_load_is_a_model_error(tmp_path: Path) -> None:
    path = write_gguf_header(tmp_path / "alien.gguf", {"general.architecture": "no-such-architecture"})
    read_gguf(path)  # the header itself is fine
    with pytest.raises(ModelError, match="could not load"):
        LlamaModel(path)


def test_lora_adapter_must_exist_and_be_a_gguf(model_path: Path, tmp_path: Path) -> None:
    from repochat.engine.session import cache_identity

    with pytest.raises(ModelError, match="LoRA adapter not found"):
        cache_identity(model_path, Settings(lora=str(tmp_path / "missing.gguf")))
    bogus = tmp_path / "adapter.gguf"
    bogus.write_text("not an adapter, just text " * 10)
    with pytest.raises(ModelError, match="not a GGUF"):
        cache_identity(model_path, Settings(lora=str(bogus)))


def test_cache_identity_separates_models_cache_types_and_devices(model_path: Path) -> None:
    from repochat.engine.session import cache_identity

    base = cache_identity(model_path, Settings())
    assert base.startswith(f"model=sha256:{DEFAULT_SHA256}")
    assert cache_identity(model_path, Settings(kv_type="q8_0")) != base
    assert cache_identity(model_path, Settings(gpu_layers=10)) != base
    assert cache_identity(model_path, Settings(ctx=4096, page_tokens=512)) == base  # neither changes KV values
