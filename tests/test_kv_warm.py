"""KV pieces computed ahead of questions (repochat.answer.kv_warm, `repochat index --kv`): real default model, real git
repositories, a real index and the real piece store on disk; asks afterwards restore what was warmed."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine_support import (TASKQ_FILES as FILES, default_model_path, engine_settings, kill_when, make_repo,
                            saved_kv_files)
from repochat.answer.ask import ask, status_plan
from repochat.cli.main import cli
from repochat.config import Settings, load_settings
from repochat.engine.pieces import PIECE_INDEX, piece_keys
from repochat.engine.planner import make_plan
from repochat.engine.session import Engine
from repochat.index.indexer import update_index
from repochat.live.kv_refresh import warm_repository
from repochat.answer.kv_warm import WarmReport, chunk_pieces, kv_fits_cache
from repochat.index.store import IndexStore
from repochat.answer.prompt import Prompter, render_file
from repochat.retrieve.excerpts import MAP_PATH, retrieval_excerpts

RETRIEVAL_QUESTION = "How often does run_once retry a job that raises?"


def _index(root: Path, cache: Path, model: Path, *args: str, **env: str) -> Result:
    environment = {"REPOCHAT_CACHE_DIR": str(cache), "REPOCHAT_MODEL": str(model), "REPOCHAT_THREADS": "1",
                   "REPOCHAT_EMBEDDINGS": "0", "REPOCHAT_INTERACTIVE_PREFILL_S": "0", **env}
    result = CliRunner(env=environment).invoke(cli, ["index", str(root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _file_piece_path(engine: Engine, settings: Settings, root: Path, path: str) -> Path:
    """Where the piece of ``path`` (rendered as a whole-repository ask renders it) is stored."""
    prompter = Prompter(engine.model, engine.model_path)
    tokens = prompter.content(render_file(path, (root / path).read_text()).text)
    key = piece_keys(engine.identity, prompter.head, [tokens])[1]
    return engine.store(settings, pieces=True).path(PIECE_INDEX, key)


# --- the setting, without running the model --------------------------------------------------------------------------
def test_index_kv_reads_booleans_and_words(tmp_path: Path) -> None:
    (tmp_path / "repochat.toml").write_text("index_kv = true\n")
    assert load_settings(tmp_path, environ={}).index_kv == "on"
    assert load_settings(tmp_path, environ={"REPOCHAT_INDEX_KV": "no"}).index_kv == "off"
    assert load_settings(tmp_path, environ={"REPOCHAT_INDEX_KV": "auto"}).index_kv == "auto"
    (tmp_path / "repochat.toml").write_text("index_kv = 'sometimes'\n")
    with pytest.raises(Exception, match="index_kv must be one of auto, on, off"):
        load_settings(tmp_path, environ={})


def test_auto_leaves_out_a_repository_whose_kv_exceeds_the_cache(tmp_path_factory: pytest.TempPathFactory,
                                                                 tmp_path: Path) -> None:
    """auto is decided from the index's token count and the model's KV bytes per token, before any model loads:
    1,000 tokens of the default model's KV (12 KB each) do not fit in 4 MB, and fit in 20 MB."""
    model = default_model_path(tmp_path_factory)
    assert kv_fits_cache(model, Settings(kv_cache_size=20 * 1024**2, memory=4 * 1024**3), 1000)[0]
    fits, why = kv_fits_cache(model, Settings(kv_cache_size=4 * 1024**2, memory=4 * 1024**3), 1000)
    assert not fits and "12 MiB" in why and "exceeds kv_cache_size" in why
    root = make_repo(tmp_path / "repo", FILES)
    result = _index(root, tmp_path / "cache", model, "--json", REPOCHAT_INDEX_KV="auto", REPOCHAT_KV_CACHE_SIZE="4MB",
                    REPOCHAT_MEMORY="4GB")
    kv = json.loads(result.output)["kv"]
    assert kv["skipped"].startswith("index_kv = auto: the repository's KV") and "exceeds" in kv["skipped"], kv
    assert kv["pieces_computed"] == 0 and not saved_kv_files(tmp_path / "cache")
    assert json.loads(_index(root, tmp_path / "cache", model, "--json", "--no-kv").output)["kv"]["skipped"] == \
        "index_kv = off"


# --- `repochat index --kv`, then an ask -------------------------------------------------------------------------------
@dataclass
class Indexed:
    root: Path
    cache: Path
    settings: Settings
    kv: dict


@pytest.fixture(scope="module")
def indexed(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    base = tmp_path_factory.mktemp("indexed")
    root = make_repo(base / "repo", FILES)
    result = _index(root, base / "cache", engine.model_path, "--kv", "--json")
    settings = engine_settings(base / "cache", model=str(engine.model_path), threads=1, embeddings=False)
    return Indexed(root, base / "cache", settings, json.loads(result.output)["kv"])


@pytest.mark.model
def test_index_kv_computes_every_file_piece_and_the_head(indexed: Indexed) -> None:
    kv = indexed.kv
    assert (kv["mode"], kv["kv_unit"], kv["skipped"]) == ("whole", "piece", ""), kv
    assert kv["pieces"] == kv["pieces_computed"] == len(FILES) + 1 and kv["pieces_cached"] == 0
    assert kv["computed_tokens"] == kv["tokens"] > 0 and kv["seconds"] > 0
    assert len(saved_kv_files(indexed.cache)) == len(FILES) + 1


@pytest.mark.model
def test_a_second_index_kv_finds_every_piece_cached(indexed: Indexed, engine: Engine) -> None:
    result = _index(indexed.root, indexed.cache, engine.model_path, "--kv")
    assert "0 computed, 6 already cached, of 6" in result.output, result.output


@pytest.mark.model
def test_an_ask_after_index_kv_prefills_only_the_link_tokens(indexed: Indexed, engine: Engine) -> None:
    engine.close_context()  # nothing in memory: every piece comes from what `index --kv` wrote
    result = ask(indexed.root, "What does run_once return?", indexed.settings, engine=engine, effort="high")
    coverage = result.coverage
    assert coverage["kv_unit"] == "piece" and coverage["cache"] == "hit", coverage
    assert coverage["prefilled_tokens"] == 0 and coverage["restored_tokens"] == indexed.kv["tokens"]
    assert coverage["pages_restored"] == indexed.kv["pieces"]
    assert coverage["link_tokens"] == (len(FILES) - 1) * indexed.settings.piece_link_tokens


@pytest.mark.model
def test_status_shows_the_share_of_the_repository_kv_cached(indexed: Indexed, engine: Engine) -> None:
    environment = {"REPOCHAT_CACHE_DIR": str(indexed.cache), "REPOCHAT_MODEL": str(engine.model_path)}
    shown = CliRunner(env=environment).invoke(cli, ["status", "-C", str(indexed.root)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    expected = f"KV cached: 100% of the repository ({indexed.kv['tokens']:,} of {indexed.kv['tokens']:,} tokens"
    assert expected in shown.output and "KV of the whole repository: ~17 MB on disk" in shown.output, shown.output
    report = json.loads(CliRunner(env=environment).invoke(cli, ["status", "-C", str(indexed.root), "--json"]).output)
    assert report["plan"]["kv_disk_bytes"] == report["plan"]["repo_tokens"] * report["plan"]["kv_bytes_per_token"]


# --- interrupted, most central first --------------------------------------------------------------------------------
class _Stop(Exception):
    pass


@pytest.mark.model
def test_an_interrupted_warm_keeps_the_most_central_piece_and_resumes(engine: Engine, tmp_path: Path) -> None:
    """results.py is the file the repo map ranks first (queue.py and worker.py use it); jobs.py is the first in
    stability order (its commit is the oldest). Stopped after one piece, the store holds the head and results.py."""
    root = make_repo(tmp_path / "repo", FILES)
    settings = engine_settings(tmp_path / "cache", model=str(engine.model_path), threads=1, embeddings=False)
    update_index(root, settings)
    progress: list[tuple[str, int, int]] = []

    def stop_after_one(stage: str, done: int, total: int) -> None:
        progress.append((stage, done, total))
        raise _Stop

    engine.close_context()
    with pytest.raises(_Stop):
        warm_repository(root, settings, engine, stop_after_one)
    assert progress == [("warm", 1, len(FILES))]
    assert _file_piece_path(engine, settings, root, "taskq/results.py").is_file()
    assert not _file_piece_path(engine, settings, root, "taskq/jobs.py").is_file()
    assert len(saved_kv_files(tmp_path / "cache")) == 2  # the head and results.py
    resumed = warm_repository(root, settings, engine)
    assert (resumed.computed, resumed.cached, resumed.pieces) == (len(FILES) - 1, 2, len(FILES) + 1), resumed
    assert engine.context is not None and engine.context.n_ctx == 2048  # head + the largest file: no bigger


@pytest.mark.model
def test_kill_9_during_index_kv_keeps_every_finished_piece(engine: Engine, tmp_path: Path) -> None:
    """A real `repochat index --kv` process killed while it computes: the next run computes only the rest."""
    root = make_repo(tmp_path / "repo", FILES)
    env = {**os.environ, "REPOCHAT_CACHE_DIR": str(tmp_path / "cache"), "REPOCHAT_MODEL": str(engine.model_path),
           "REPOCHAT_THREADS": "1", "REPOCHAT_EMBEDDINGS": "0"}
    command = [sys.executable, "-m", "repochat", "index", str(root), "--kv", "--json"]
    kill_when(command, env, lambda: len(saved_kv_files(tmp_path / "cache")) >= 3, "piece saved")
    saved = len(saved_kv_files(tmp_path / "cache"))
    assert 3 <= saved < len(FILES) + 1, "the warm-up finished before it could be killed"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    kv = json.loads(done.stdout)["kv"]
    assert (kv["pieces_cached"], kv["pieces_computed"]) == (saved, len(FILES) + 1 - saved), kv


# --- retrieval mode: the index's chunks, rendered as excerpts ---------------------------------------------------------
@pytest.fixture(scope="module")
def retrieval(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings, WarmReport]:
    """A retrieved context of 768 tokens: with the default model, auto retrieves from this 1,484-token
    repository rather than put it all in (planner.auto_refuses_whole), so the chunks are what gets warmed."""
    base = tmp_path_factory.mktemp("retrieval")
    root = make_repo(base / "repo", FILES)
    settings = engine_settings(base / "cache", model=str(engine.model_path), threads=1, embeddings=False,
                               retrieval_tokens=768, kv_pieces_retrieval=True)
    update_index(root, settings)
    engine.close_context()
    return root, settings, warm_repository(root, settings, engine)


def _retrieval_budget(engine: Engine, settings: Settings) -> int:
    """The retrieved context of the auto ask below (its plan, once auto has turned the whole repository down)."""
    return make_plan(engine.model_path, 0, settings, "auto", whole_refused="retrieval wanted").retrieval_tokens


@pytest.mark.model
def test_retrieval_mode_warms_one_piece_per_chunk(retrieval: tuple[Path, Settings, WarmReport]) -> None:
    root, settings, report = retrieval
    chunks = IndexStore.open(settings.index_path(root)).table("chunks").count_rows()
    assert report.mode == "retrieval" and report.computed == report.pieces == chunks + 1, report


@pytest.mark.model
def test_status_counts_the_excerpt_pieces_cached(retrieval: tuple[Path, Settings, WarmReport], tmp_path: Path) -> None:
    root, settings, report = retrieval
    plan = status_plan(root, settings)
    assert (plan["kv_excerpts"], plan["kv_excerpts_cached"]) == (report.pieces, report.pieces)
    assert plan["kv_excerpt_tokens"] == plan["kv_excerpt_tokens_cached"] == report.tokens
    elsewhere = status_plan(root, dataclasses.replace(settings, cache_dir=str(tmp_path / "cache")))
    assert (elsewhere["kv_excerpts_cached"], elsewhere["kv_excerpt_tokens_cached"]) == (0, 0)


@pytest.mark.model
def test_warmed_excerpt_pieces_are_the_tokens_a_retrieved_context_gets(
        retrieval: tuple[Path, Settings, WarmReport], engine: Engine) -> None:
    root, settings, _report = retrieval
    prompter = Prompter(engine.model, engine.model_path)
    warmed = {tuple(tokens) for _path, tokens in chunk_pieces(IndexStore.open(settings.index_path(root)), prompter)}
    budget = _retrieval_budget(engine, settings)
    excerpts = retrieval_excerpts(root, settings, RETRIEVAL_QUESTION, budget)
    prompt = prompter.excerpts(excerpts, budget + len(prompter.head))
    shown = [(excerpt.path, tuple(tokens)) for excerpt, tokens in zip(prompt.excerpts, prompt.pieces)]
    assert len([path for path, _tokens in shown if path != MAP_PATH]) >= 2, shown
    assert all(tokens in warmed for path, tokens in shown if path != MAP_PATH)


@pytest.mark.model
def test_a_retrieval_ask_restores_every_excerpt_piece(retrieval: tuple[Path, Settings, WarmReport],
                                                      engine: Engine) -> None:
    """Only the repository map, which depends on the question, is left to prefill."""
    root, settings, _report = retrieval
    engine.close_context()
    result = ask(root, RETRIEVAL_QUESTION, settings, engine=engine)
    coverage = result.coverage
    assert coverage["mode"] == "retrieval" and coverage["kv_unit"] == "piece", coverage
    assert coverage["pages_restored"] == coverage["pages"] - 1 and coverage["restored_tokens"] > 0, coverage
    prompter = Prompter(engine.model, engine.model_path)
    excerpts = retrieval_excerpts(root, settings, RETRIEVAL_QUESTION, _retrieval_budget(engine, settings))
    overview = next(excerpt for excerpt in excerpts if excerpt.path == MAP_PATH)
    assert coverage["prefilled_tokens"] == len(prompter.excerpts([overview], 10**6).pieces[0])


@pytest.mark.model
def test_off_leaves_retrieval_pieces_to_the_asks(retrieval: tuple[Path, Settings, WarmReport], engine: Engine,
                                                  tmp_path: Path) -> None:
    """The watcher's refresh in retrieval mode follows index_kv (whole-repository mode it always keeps ready)."""
    root, settings, _report = retrieval
    elsewhere = engine_settings(tmp_path / "cache", model=str(engine.model_path), threads=1, embeddings=False,
                                retrieval_tokens=settings.retrieval_tokens, kv_pieces_retrieval=True)
    for policy in ("off", "auto"):
        report = warm_repository(root, dataclasses.replace(elsewhere, kv_cache_size=1024**2), engine, policy=policy)
        assert report.mode == "retrieval" and report.skipped.startswith(f"index_kv = {policy}"), report
    assert not saved_kv_files(tmp_path / "cache")
