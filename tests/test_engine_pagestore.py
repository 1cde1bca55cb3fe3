"""KV page store: prefix-chained keys, checksummed atomic files, LRU eviction, and a real KV round trip."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from engine_support import default_model_path
from repochat.engine.llama import ContextParams, LlamaContext, LlamaModel
from repochat.engine.pagestore import LoadStatus, PageStore, chain_keys

IDENTITY = "model=abc;k=f16"


def test_chain_keys_change_from_the_edited_page_onward() -> None:
    pages = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]]
    edited = [[1, 2, 3], [4, 5, 60], [7, 8, 9], [10, 11]]
    before, after = chain_keys(IDENTITY, pages), chain_keys(IDENTITY, edited)
    assert before[0] == after[0]
    assert all(b != a for b, a in zip(before[1:], after[1:]))  # same tokens later, different prefix: new keys
    assert chain_keys("model=other", pages)[0] != before[0]
    assert len(set(before)) == len(before)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = PageStore(tmp_path, IDENTITY, max_bytes=10**9)
    payload = os.urandom(10_000)
    assert store.save(0, "a" * 64, 256, payload, protect=set())
    loaded = store.load(0, "a" * 64)
    assert loaded.status is LoadStatus.OK and bytes(loaded.data) == payload
    assert store.load(1, "b" * 64).status is LoadStatus.MISSING


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_page_is_reported_and_deleted(tmp_path: Path, damage: str) -> None:
    store = PageStore(tmp_path, IDENTITY, max_bytes=10**9)
    store.save(3, "c" * 64, 256, os.urandom(5000), protect=set())
    path = store.path(3, "c" * 64)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-100] ^= 0x01
    elif damage == "truncate":
        raw = raw[:-1]
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    loaded = store.load(3, "c" * 64)
    assert loaded.status is LoadStatus.CORRUPT and loaded.reason
    assert not path.exists()


def test_page_under_a_different_position_is_rejected(tmp_path: Path) -> None:
    store = PageStore(tmp_path, IDENTITY, max_bytes=10**9)
    store.save(0, "d" * 64, 256, b"x" * 100, protect=set())
    moved = store.path(1, "d" * 64)
    moved.parent.mkdir(parents=True, exist_ok=True)
    store.path(0, "d" * 64).rename(moved)
    assert store.load(1, "d" * 64).status is LoadStatus.CORRUPT


def test_interrupted_write_leaves_no_page(tmp_path: Path, monkeypatch) -> None:
    store = PageStore(tmp_path, IDENTITY, max_bytes=10**9)

    def ctrl_c(*_args: object) -> None:  # Ctrl-C arrives after the data is written, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        store.save(0, "e" * 64, 1, b"0123456789", protect=set())
    monkeypatch.undo()
    assert not store.path(0, "e" * 64).exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert store.save(0, "e" * 64, 1, b"0123456789", protect=set())  # the size accounting recovered


def test_eviction_drops_least_recently_used_chain_tail_first(tmp_path: Path) -> None:
    size = 1000
    store = PageStore(tmp_path, IDENTITY, max_bytes=6 * (size + 64))
    old = [(i, f"{i}old".ljust(64, "0")) for i in range(3)]
    new = [(i, f"{i}new".ljust(64, "0")) for i in range(3)]
    for index, key in old + new:
        assert store.save(index, key, 10, b"o" * size, protect=set())
    store.touch(old, when=time.time() - 100)
    store.touch(new, when=time.time())
    fresh = (3, "3new".ljust(64, "0"))
    assert store.save(*fresh, 10, b"n" * size, protect={key for _, key in new} | {fresh[1]})
    remaining = {key for index, key in old if store.exists(index, key)}
    # Eviction frees down to 90% of the bound: two pages, both from the tail of the least recently used chain.
    assert remaining == {old[0][1]}
    assert all(store.exists(i, k) for i, k in new)


def test_a_chain_larger_than_the_bound_stops_saving(tmp_path: Path) -> None:
    store = PageStore(tmp_path, IDENTITY, max_bytes=2500)
    keys = [f"{i}k".ljust(64, "0") for i in range(3)]
    saved = [store.save(i, key, 10, b"z" * 1000, protect=set(keys)) for i, key in enumerate(keys)]
    assert saved == [True, True, False]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    loaded = LlamaModel(default_model_path(tmp_path_factory))
    yield loaded
    loaded.close()


def test_kv_pages_round_trip_through_disk_bit_identically(model: LlamaModel, tmp_path: Path) -> None:
    text = Path(__file__).read_text(encoding="utf-8")
    tokens = model.tokenize(text)[:512]
    question = model.tokenize("\nWhich function tests eviction?")
    pages = [tokens[:256], tokens[256:]]
    keys = chain_keys(IDENTITY, pages)
    store = PageStore(tmp_path, IDENTITY, max_bytes=10**9)

    first = LlamaContext(model, ContextParams(n_ctx=1024, n_batch=256))
    for index, page in enumerate(pages):
        first.decode(page, index * 256)
        assert store.save(index, keys[index], 256, first.export_range(index * 256, index * 256 + 256), set(keys))
    first.decode(question, 512, logits_last=True)
    expected = first.last_logits()
    first.close()

    second = LlamaContext(model, ContextParams(n_ctx=2048, n_batch=256))  # another size: values do not depend on it
    for index, key in enumerate(keys):
        loaded = store.load(index, key)
        assert loaded.status is LoadStatus.OK and second.import_range(loaded.data)
    assert second.pos_max() == 511
    second.decode(question, 512, logits_last=True)
    assert np.array_equal(second.last_logits(), expected)
    second.close()
