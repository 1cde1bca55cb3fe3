"""How `ask --effort auto` routes a question, on the real default model, real git repositories and a real index:
lookups from the index without the model, and no prefill started that this machine is estimated to need longer for
than interactive_prefill_s."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from engine_support import engine_settings, make_repo
from repochat.answer.ask import ask
from repochat.engine.session import Engine
from repochat.index.indexer import update_index
from test_pick import FILES

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def measured(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    """A repository asked about once (whole, no time limit), so this machine's prefill speed is on record."""
    base = tmp_path_factory.mktemp("routing")
    repo = make_repo(base / "repo", FILES)
    settings = engine_settings(base / "cache", model=str(engine.model_path), threads=1, embeddings=False,
                               index_dir=str(base / "index"))
    first = ask(repo, "What does Cart.total add?", settings, engine=engine)
    assert first.coverage["mode"] == "whole"
    rates = Path(engine.settings.cache_dir) / "prefill-rates.json"  # the engine records where its settings say
    shutil.copy(rates, base / "cache" / "prefill-rates.json")
    return repo, settings


def _rates_only(engine: Engine, settings, tmp_path: Path, **changes):
    """The same settings with an empty KV page cache that knows the measured prefill speed, and nothing in the
    engine's memory (pages it still holds would not need a prefill either)."""
    engine.close_context()
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(Path(settings.cache_dir) / "prefill-rates.json", cache / "prefill-rates.json")
    return dataclasses.replace(settings, cache_dir=str(cache), **changes)


def test_auto_answers_from_retrieval_rather_than_start_a_slow_whole_prefill(engine: Engine, measured,
                                                                          tmp_path: Path) -> None:
    repo, settings = measured
    hurried = _rates_only(engine, settings, tmp_path, interactive_prefill_s=0.5)
    result = ask(repo, "What does Cart.total add?", hurried, engine=engine)
    assert result.coverage["mode"] == "retrieval"
    assert any("would take about" in n and "answered from retrieval" in n for n in result.coverage["notices"])


def test_high_effort_says_what_the_whole_prefill_costs_and_does_it(engine: Engine, measured, tmp_path: Path) -> None:
    repo, settings = measured
    hurried = _rates_only(engine, settings, tmp_path, interactive_prefill_s=0.5)
    result = ask(repo, "What does Cart.total add?", hurried, engine=engine, effort="high")
    assert result.coverage["mode"] == "whole" and result.coverage["prefilled_tokens"] > 0
    assert any("later questions reuse it" in n for n in result.coverage["notices"])


def test_a_cached_whole_prefix_is_not_refused_for_its_cost(engine: Engine, measured) -> None:
    repo, settings = measured  # its pages were saved by the first ask: nothing is left to prefill
    result = ask(repo, "What does Cart.total add?", dataclasses.replace(settings, interactive_prefill_s=0.5),
                 engine=engine)
    assert result.coverage["mode"] == "whole" and not result.coverage["notices"]


def test_a_lookup_is_answered_from_the_index_without_loading_a_model(measured, tmp_path: Path) -> None:
    repo, settings = measured
    update_index(repo, settings)
    no_model = dataclasses.replace(settings, model=str(tmp_path / "missing.gguf"))  # loading it would fail
    result = ask(repo, "Where is apply_discount defined?", no_model)
    assert result.coverage["mode"] == "lookup"
    assert "shop/pricing.py:4-5" in result.answer and all(c["valid"] for c in result.citations)


def test_high_effort_asks_the_model_even_for_a_lookup(engine: Engine, measured) -> None:
    repo, settings = measured
    update_index(repo, settings)
    result = ask(repo, "Where is apply_discount defined?", settings, engine=engine, effort="high")
    assert result.coverage["mode"] == "whole"
