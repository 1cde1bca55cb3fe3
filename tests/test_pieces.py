"""Position-independent KV pieces (engine/pieces.py) end to end on the real default model and real git repositories:
each file's KV computed once, alone, then restored and shifted into whatever place a later context gives it.

One engine (model) is loaded for the module; `close_context()` drops the in-memory KV so that an ask has to go
through the piece store on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine_support import (TASKQ_FILES as FILES, TASKQ_QUESTION as QUESTION, Cold, cold_ask, engine_settings,
                            fresh_copy, git, kill_when, saved_kv_files)
from repochat.answer.ask import AskResult, ask, status_plan
from repochat.config import Settings
from repochat.engine.pagestore import PageStore
from repochat.engine.pieces import LINK_INDEX, PIECE_INDEX, piece_store_identity
from repochat.engine.session import Engine, split_pages
from repochat.repo.history import stability_order
from repochat.answer.prompt import Prompter, render_file

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cold(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Cold:
    return cold_ask(engine, tmp_path_factory.mktemp("cold"), effort="high")


def _ask_from_disk(engine: Engine, repo: Path, settings: Settings, question: str = QUESTION, effort: str = "high",
                   **kwargs) -> AskResult:
    engine.close_context()  # nothing in memory: the pieces must come from the store on disk
    return ask(repo, question, settings, engine=engine, effort=effort, **kwargs)


def _piece_tokens(engine: Engine, repo: Path, path: str) -> int:
    return len(Prompter(engine.model, engine.model_path).content(render_file(path, (repo / path).read_text()).text))


def test_cold_ask_computes_every_file_alone_and_saves_it(cold: Cold) -> None:
    coverage = cold.result.coverage
    assert coverage["mode"] == "whole" and coverage["kv_unit"] == "piece" and coverage["cache"] == "miss"
    assert coverage["pages"] == len(FILES) + 1 == coverage["pages_saved"]  # the head and one piece per file
    assert coverage["prefilled_tokens"] == coverage["repo_tokens"] and coverage["restored_tokens"] == 0
    assert ("pieces", len(FILES) + 1, len(FILES) + 1) in cold.progress
    saved = [path.name for path in saved_kv_files(Path(cold.settings.cache_dir))]
    assert len([name for name in saved if name.startswith(f"{PIECE_INDEX:07d}-")]) == len(FILES) + 1
    assert coverage["link_tokens"] == (len(FILES) - 1) * cold.settings.piece_link_tokens  # every piece but the first
    assert len([name for name in saved if name.startswith(f"{LINK_INDEX:07d}-")]) == len(FILES) - 1  # links saved
    assert cold.result.answer.strip()


def test_warm_ask_restores_every_piece_and_answers_identically(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    warm = _ask_from_disk(engine, repo, settings)
    assert warm.coverage["cache"] == "hit" and warm.coverage["prefilled_tokens"] == 0
    assert warm.coverage["restored_tokens"] == cold.result.coverage["repo_tokens"]
    assert warm.coverage["link_tokens"] == 0 and warm.coverage["links_restored"] == len(FILES) - 1
    assert warm.answer == cold.result.answer  # the same cells, shifted to the same places


def test_editing_the_first_file_recomputes_that_file_only(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    """With prefix pages an edit of the first file invalidates every page; with pieces, only its own piece, and the
    later files' pieces are restored at their new positions."""
    repo, settings = fresh_copy(cold, tmp_path)
    first = stability_order(repo, list(FILES))[0]
    (repo / first).write_text(FILES[first] + "\n# Retries back off exponentially.\n")
    result = _ask_from_disk(engine, repo, settings, "What does run_once return?")
    assert result.coverage["cache"] == "partial"
    assert result.coverage["prefilled_tokens"] == _piece_tokens(engine, repo, first)
    assert result.coverage["restored_tokens"] == result.coverage["repo_tokens"] - result.coverage["prefilled_tokens"]
    # the boundaries between unchanged files come back from disk; only those beside the edited file are recomputed
    assert 0 < result.coverage["link_tokens"] <= 2 * settings.piece_link_tokens
    assert result.coverage["links_restored"] >= len(FILES) - 3


def test_a_moved_file_is_restored_at_its_new_place_and_read_there(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    """Committing worker.py moves it last in stability order: its new version is computed, and every other file
    (queue.py, results.py ... now at other positions) comes back from disk; the answer reads the new value."""
    repo, settings = fresh_copy(cold, tmp_path)
    (repo / "taskq/worker.py").write_text(FILES["taskq/worker.py"].replace("MAX_RETRIES = 3", "MAX_RETRIES = 5"))
    git(repo, "commit", "-q", "-am", "more retries", when=1_800_000_000)
    result = _ask_from_disk(engine, repo, settings, "What is the value of MAX_RETRIES?")
    assert result.coverage["prefilled_tokens"] == _piece_tokens(engine, repo, "taskq/worker.py")
    assert re.search(r"\b5\b|five", result.answer.split("Sources:")[0], re.I) and "= 3" not in result.answer


def test_assembled_context_predicts_like_a_full_prefill(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    """The quality guard at the level of the next token: pieces that never saw each other, assembled, against the
    same tokens prefilled in one pass; the link (each piece's first tokens recomputed) brings them closer."""
    prompter = Prompter(engine.model, engine.model_path)
    files = [render_file(path, (cold.repo / path).read_text()) for path in stability_order(cold.repo, list(FILES))]
    prompt = prompter.whole(files)
    question = prompter.question(QUESTION, cite=False)
    store = PageStore(tmp_path / "cache", piece_store_identity(engine.identity), cold.settings.kv_cache_size)

    def next_token_logits(link_tokens: int | None) -> np.ndarray:
        engine.close_context()
        context = engine.ensure_context(2048)
        if link_tokens is None:  # a full prefill
            context.decode(prompt.tokens + question, 0, logits_last=True)
        else:
            engine.load_pieces(prompt.head, prompt.pieces, store, link_tokens=link_tokens)
            context.decode(question, len(prompt.tokens), logits_last=True)
        logits = context.last_logits()
        engine.close_context()
        return logits

    full, alone, linked = next_token_logits(None), next_token_logits(0), next_token_logits(32)
    assert int(np.argmax(full)) == int(np.argmax(linked))
    assert _kl(full, linked) < min(_kl(full, alone), 0.1), (_kl(full, linked), _kl(full, alone))
    assert len(set(np.argsort(full)[-5:]) & set(np.argsort(linked)[-5:])) >= 4


def _kl(reference: np.ndarray, other: np.ndarray) -> float:
    p, q = _softmax(reference), _softmax(other)
    return float(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12))))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def test_a_damaged_piece_is_recomputed_alone(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    victim = max(saved_kv_files(tmp_path / "cache"), key=lambda path: path.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = _ask_from_disk(engine, repo, settings)
    assert any("damaged" in notice for notice in result.coverage["notices"])
    assert result.coverage["pages_restored"] == len(FILES)  # all the others
    assert 0 < result.coverage["prefilled_tokens"] < cold.result.coverage["repo_tokens"]
    assert result.answer == cold.result.answer
    assert _ask_from_disk(engine, repo, settings).coverage["cache"] == "hit"  # written back


def test_in_memory_pieces_are_kept_for_the_next_question(cold: Cold, engine: Engine) -> None:
    ask(cold.repo, "What does ResultStore.get return for an unknown id?", cold.settings, engine=engine, effort="high")
    second = ask(cold.repo, "Which module imports heapq?", cold.settings, engine=engine, effort="high")
    assert second.coverage["cache"] == "hit" and second.coverage["pages_restored"] == second.coverage["pages"]
    assert second.coverage["restore_s"] == 0  # nothing read from disk: all of it was still in the context


def test_status_reports_how_much_of_the_repository_is_cached(cold: Cold, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    assert status_plan(repo, settings)["cache"] == "hit"
    first = stability_order(repo, list(FILES))[0]
    (repo / first).write_text(FILES[first] + "\n# edited\n")
    report = status_plan(repo, settings)
    assert report["kv_unit"] == "piece" and report["cache"] == "partial"
    assert report["pages_cached"] == report["pages"] - 1
    assert 0 < report["tokens_cached"] < report["repo_tokens"]


def test_a_retrieval_ask_reuses_the_excerpts_an_earlier_question_computed(cold: Cold, engine: Engine,
                                                                          tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    settings = engine_settings(tmp_path / "cache", model=cold.settings.model, threads=1, embeddings=False,
                               index_dir=str(tmp_path / "index"), kv_pieces_retrieval=True)
    first = _ask_from_disk(engine, repo, settings, "What does run_once do when job.run raises?", effort="low")
    assert first.coverage["mode"] == "retrieval" and first.coverage["kv_unit"] == "piece"
    second = _ask_from_disk(engine, repo, settings, "How often does run_once retry a job that raises?", effort="low")
    assert second.coverage["restored_tokens"] > 0  # the excerpts both questions retrieved
    assert second.coverage["prefilled_tokens"] < first.coverage["prefilled_tokens"]


def test_a_retrieved_context_is_prefilled_in_one_pass_by_default(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    """kv_pieces_retrieval is off by default: a retrieval ask loads its context as prefix pages, whole-repository
    asks keep their pieces."""
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    settings = engine_settings(tmp_path / "cache", model=cold.settings.model, threads=1, embeddings=False,
                               index_dir=str(tmp_path / "index"))
    result = _ask_from_disk(engine, repo, settings, "What does run_once do when job.run raises?", effort="low")
    assert result.coverage["mode"] == "retrieval" and result.coverage["kv_unit"] == "page", result.coverage
    assert not result.coverage["notices"]  # pieces were not refused: they were not asked for


def test_kill_9_during_assembly_keeps_every_finished_piece(cold: Cold, tmp_path: Path) -> None:
    """A real `repochat ask` process killed mid-prefill: the next one restores every piece it saved."""
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    env = {**os.environ, "REPOCHAT_CACHE_DIR": str(tmp_path / "cache"), "REPOCHAT_THREADS": "1",
           "REPOCHAT_MAX_ANSWER_TOKENS": "48", "REPOCHAT_INTERACTIVE_PREFILL_S": "0"}
    command = [sys.executable, "-m", "repochat", "ask", "-C", str(repo), "--model", cold.settings.model,
               "--effort", "high", "--json", QUESTION]
    kill_when(command, env, lambda: len(saved_kv_files(tmp_path / "cache")) >= 3, "piece saved")
    saved = len(saved_kv_files(tmp_path / "cache"))
    assert 3 <= saved < len(FILES) + 1, "the ask finished before it could be killed"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    coverage = json.loads(done.stdout)["coverage"]
    assert coverage["cache"] == "partial" and coverage["pages_restored"] >= saved


def test_pages_setting_still_gives_prefix_pages(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    settings = engine_settings(tmp_path / "cache", model=cold.settings.model, threads=1, kv_pieces=False)
    result = _ask_from_disk(engine, cold.repo, settings)
    assert result.coverage["kv_unit"] == "page"
    assert result.coverage["pages"] == len(split_pages([0] * result.coverage["repo_tokens"], 256))


def test_a_sliding_window_model_falls_back_to_prefix_pages_and_says_so(cold: Cold, tmp_path: Path) -> None:
    """Gemma 3's local layers see a window of 512 tokens: a piece computed alone would not be what a full prefill
    computes there, so its cache goes in prefix pages, with a notice."""
    settings = engine_settings(tmp_path / "cache", model="gemma-270m", threads=1, max_answer_tokens=16)
    first = ask(cold.repo, QUESTION, settings, effort="high")
    assert first.coverage["kv_unit"] == "page" and first.coverage["pages"] > 1
    assert any("prefix pages instead" in notice for notice in first.coverage["notices"]), first.coverage["notices"]
    again = ask(cold.repo, QUESTION, settings, effort="high")
    assert again.coverage["cache"] == "hit" and again.answer == first.answer
    status = status_plan(cold.repo, settings)
    assert status["kv_unit"] == "page" and status["cache"] == "hit"
