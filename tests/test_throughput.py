"""Measured prefill speed (repochat.engine.throughput): the cost model's fit, the store on disk, the estimate the
planner asks for, and on the real default model: a prefill records its samples and they predict the next one."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from engine_support import default_model_path, engine_settings
from repochat.config import Settings
from repochat.engine import throughput
from repochat.engine.throughput import (DEPTH_RATIO, KEEP, CostModel, Sample, estimate_prefill_seconds,
                                        fit, measured_rate, rate_key, record, samples_for)

TRUE = CostModel(a=0.004, b=1.2e-6)  # about 250 tok/s at depth 0, twice as slow per token at depth 3,300


def _pages(model: CostModel, total: int, page: int = 1024, noise: tuple[float, ...] = (1.0,)) -> list[Sample]:
    """Samples of a prefill of ``total`` tokens in pages, as the engine records them, with a repeating noise factor."""
    return [Sample(page, start, model.seconds(page, start) * noise[i % len(noise)])
            for i, start in enumerate(range(0, total, page))]


def _model_file(tmp_path: Path, size: int = 4096) -> Path:
    path = tmp_path / "tiny-model.gguf"
    path.write_bytes(b"GGUF" + bytes(size - 4))
    return path


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(cache_dir=str(tmp_path / "cache"), threads=2, **changes)


# --- the fit -------------------------------------------------------------------------------------------------------

def test_fit_recovers_linear_and_quadratic_costs_from_pages_at_many_depths() -> None:
    model = fit(_pages(TRUE, 16 * 1024, noise=(1.05, 0.95, 1.0, 1.1, 0.9)))
    assert model is not None
    assert model.a == pytest.approx(TRUE.a, rel=0.15)
    assert model.b == pytest.approx(TRUE.b, rel=0.25)
    # a cold prefill twice as deep as anything measured is still predicted within 10%
    assert model.seconds(32 * 1024) == pytest.approx(TRUE.seconds(32 * 1024), rel=0.1)


def test_one_sample_ties_depth_cost_to_the_measured_ratio() -> None:
    only = Sample(512, 0, 2.0)
    model = fit([only])
    assert model is not None
    assert model.b == pytest.approx(model.a * DEPTH_RATIO)
    assert model.seconds(512) == pytest.approx(2.0)
    assert model.seconds(512, start=8192) > 2.0  # deeper costs more even though no depth was measured


def test_samples_without_depth_spread_use_the_ratio_too() -> None:
    same_depth = [Sample(1024, 0, 4.0), Sample(1024, 0, 5.0), Sample(1024, 128, 4.6)]
    model = fit(same_depth)
    assert model is not None and model.b == pytest.approx(model.a * DEPTH_RATIO)
    assert 4.0 < model.seconds(1024) < 5.0


def test_noise_that_makes_deeper_pages_faster_never_gives_negative_costs() -> None:
    faster_deeper = [Sample(1024, start, 4.0 - start / 8192) for start in range(0, 16 * 1024, 1024)]
    model = fit(faster_deeper)
    assert model is not None
    assert model.a > 0 and model.b >= 0
    assert all(model.seconds(1024, start) > 0 for start in range(0, 16 * 1024, 1024))


def test_no_samples_no_model() -> None:
    assert fit([]) is None


# --- the store -----------------------------------------------------------------------------------------------------

def test_store_keeps_the_last_samples_per_key_and_drops_tiny_ones(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    key = rate_key(settings, _model_file(tmp_path), threads=2, extra_buffers=True)
    other = replace(key, threads=1)
    record(settings, key, [Sample(8, 0, 0.1)] + _pages(TRUE, (KEEP + 8) * 256, page=256))
    record(settings, other, [Sample(256, 0, 1.5)])
    kept = samples_for(settings, key)
    assert len(kept) == KEEP
    assert kept[0].start == 8 * 256 and kept[-1].start == (KEEP + 7) * 256  # the oldest went first
    assert samples_for(settings, other) == [Sample(256, 0, 1.5)]


def test_a_corrupt_store_reads_as_empty_and_is_replaced_by_the_next_record(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    model_path = _model_file(tmp_path)
    path = throughput.store_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "rates": {"half a fi')
    assert estimate_prefill_seconds(settings, model_path, 1024) is None
    key = rate_key(settings, model_path, threads=2, extra_buffers=True)
    record(settings, key, [Sample(1024, 0, 4.0)])
    assert samples_for(settings, key) == [Sample(1024, 0, 4.0)]
    assert json.loads(path.read_text())["version"] == 1


def test_a_malformed_entry_is_dropped_and_the_others_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    key = rate_key(settings, _model_file(tmp_path), threads=2, extra_buffers=True)
    record(settings, key, [Sample(1024, 0, 4.0)])
    path = throughput.store_path(settings)
    data = json.loads(path.read_text())
    data["rates"]["junk"] = {"key": {"model": 3}, "samples": [["x", 0, 1]]}
    path.write_text(json.dumps(data))
    assert samples_for(settings, key) == [Sample(1024, 0, 4.0)]


def test_a_cache_dir_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    settings = Settings(cache_dir=str(blocker / "cache"), threads=2)
    key = rate_key(settings, _model_file(tmp_path), threads=2, extra_buffers=True)
    record(settings, key, [Sample(1024, 0, 4.0)])  # must not raise
    assert samples_for(settings, key) == []
    assert estimate_prefill_seconds(settings, _model_file(tmp_path), 1024) is None


# --- the estimate --------------------------------------------------------------------------------------------------

def test_estimate_uses_the_samples_of_this_setup(tmp_path: Path) -> None:
    settings = _settings(tmp_path, cpu_extra_buffers="on")
    model_path = _model_file(tmp_path)
    assert estimate_prefill_seconds(settings, model_path, 4096) is None and measured_rate(settings, model_path) is None
    record(settings, rate_key(settings, model_path, threads=2, extra_buffers=True), _pages(TRUE, 8192))
    record(settings, rate_key(settings, model_path, threads=2, extra_buffers=False), _pages(CostModel(0.1, 0), 8192))
    estimate = estimate_prefill_seconds(settings, model_path, 4096, start=2048)
    assert estimate == pytest.approx(TRUE.seconds(4096, 2048), rel=0.05)
    assert measured_rate(settings, model_path) == pytest.approx(TRUE.rate(), rel=0.05)
    # another cache type is another setup: nothing measured for it
    assert estimate_prefill_seconds(replace(settings, kv_type="q8_0"), model_path, 4096) is None


def test_estimate_falls_back_to_the_nearest_thread_count_scaled(tmp_path: Path) -> None:
    settings = _settings(tmp_path, cpu_extra_buffers="on")  # threads=2
    model_path = _model_file(tmp_path)
    record(settings, rate_key(settings, model_path, threads=1, extra_buffers=True), _pages(TRUE, 8192))
    record(settings, rate_key(settings, model_path, threads=8, extra_buffers=True), _pages(TRUE, 8192))
    assert estimate_prefill_seconds(settings, model_path, 4096) == pytest.approx(TRUE.seconds(4096) / 2, rel=0.05)


def test_estimate_takes_plain_weights_samples_when_the_preferred_layout_never_ran(tmp_path: Path) -> None:
    settings = _settings(tmp_path, cpu_extra_buffers="on")
    model_path = _model_file(tmp_path)
    record(settings, rate_key(settings, model_path, threads=2, extra_buffers=False), _pages(TRUE, 8192))
    assert estimate_prefill_seconds(settings, model_path, 1024) == pytest.approx(TRUE.seconds(1024), rel=0.05)


def test_another_model_file_has_no_estimate(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    record(settings, rate_key(settings, _model_file(tmp_path), threads=2, extra_buffers=True), _pages(TRUE, 4096))
    bigger = tmp_path / "other"
    bigger.mkdir()
    assert estimate_prefill_seconds(settings, _model_file(bigger, size=8192), 1024) is None


def test_status_prices_a_whole_repository_prefill(tmp_path: Path) -> None:
    from repochat.answer.status import prefill_status

    settings = _settings(tmp_path, cpu_extra_buffers="on")
    model_path = _model_file(tmp_path)
    cached = 4 * settings.page_tokens
    plan = {"model": str(model_path), "mode": "whole", "repo_tokens": 19_000, "pages_cached": 4, "cache": "partial",
            "prefill_spans": [(19_000 - cached, cached)]}
    assert prefill_status(settings, dict(plan))["rate_tokens_per_s"] is None
    record(settings, rate_key(settings, model_path, threads=2, extra_buffers=True), _pages(TRUE, 8192))
    shown = prefill_status(settings, dict(plan))
    assert shown["cold_prefill_s"] == pytest.approx(TRUE.seconds(19_000), rel=0.05)
    assert shown["cold_prefill"] == f"~{round(TRUE.seconds(19_000) / 60)} min on this machine"
    assert shown["prefill_now_s"] == pytest.approx(TRUE.seconds(19_000 - cached, cached), rel=0.05)
    # pieces: each missing one alone behind the head, far cheaper than the same tokens deep in the context
    pieces = prefill_status(settings, {**plan, "prefill_spans": [(600, 100)] * 3})
    assert pieces["prefill_now_s"] == pytest.approx(3 * TRUE.seconds(600, 100), rel=0.05)


# --- the real engine -----------------------------------------------------------------------------------------------

TEXT = Path(__file__).with_name("test_engine_planner.py").read_text(encoding="utf-8")


@pytest.mark.model
def test_a_real_prefill_records_samples_that_predict_the_next_one(tmp_path_factory: pytest.TempPathFactory,
                                                                   tmp_path: Path) -> None:
    from repochat.engine.pagestore import PageStore
    from repochat.engine.session import Engine, split_pages

    model_path = default_model_path(tmp_path_factory)
    settings = engine_settings(tmp_path / "cache", model=str(model_path), threads=1, page_tokens=512)
    with Engine(model_path, settings) as engine:
        tokens = engine.model.tokenize(TEXT * 4)
        first, second = tokens[:2048], tokens[2048:4096]
        engine.ensure_context(4096 + 64)
        store = PageStore(tmp_path / "first", engine.identity, settings.kv_cache_size)
        engine.load_prefix(split_pages(first, settings.page_tokens), store)
        key = rate_key(settings, model_path, threads=1, extra_buffers=engine.extra_buffers)
        # after the first-use probe's batch, when its fitted threads were 1 too
        pages = [(s.tokens, s.start) for s in samples_for(settings, key)][-4:]
        assert pages == [(512, 0), (512, 512), (512, 1024), (512, 1536)]
        estimate = estimate_prefill_seconds(settings, model_path, len(second))
        assert estimate is not None
        engine.close_context()  # a fresh context and page store: the second prefill starts from nothing
        engine.ensure_context(4096 + 64)
        began = time.monotonic()
        engine.load_prefix(split_pages(second, settings.page_tokens), PageStore(tmp_path / "second", engine.identity,
                                                                                 settings.kv_cache_size))
        measured = time.monotonic() - began
    assert 0.5 < measured / estimate < 2.0, (measured, estimate)


@pytest.mark.model
def test_the_first_use_probe_seeds_an_estimate(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from repochat.engine import probe

    model_path = default_model_path(tmp_path_factory)
    settings = engine_settings(tmp_path / "cache", model=str(model_path), threads=0)
    probe._known.clear()  # as on a machine where this model never ran: the child process runs
    extra = probe.checked_extra_buffers(model_path, settings)
    [entry] = json.loads(throughput.store_path(settings).read_text())["rates"].values()
    [[tokens, start, seconds]] = entry["samples"]
    assert (tokens, start) == (64, 0) and 0 < seconds < 60
    assert entry["key"] == {"model": model_path.name, "size": model_path.stat().st_size,
                            "threads": entry["key"]["threads"], "gpu_layers": 0, "extra_buffers": extra,
                            "kv_type": "f16", "flash_attn": False}
    assert entry["key"]["threads"] >= 1
    same_threads = replace(settings, threads=entry["key"]["threads"])
    assert estimate_prefill_seconds(same_threads, model_path, 64) == pytest.approx(seconds, rel=0.01)
