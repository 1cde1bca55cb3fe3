"""`ask` end to end on the real default model and real git repositories: cold and warm asks through the KV page
store, edits, damaged checkpoints, Ctrl-C during prefill, a Japanese question, an empty repository.

These run with prefix pages (kv_pieces off), the path of models whose cache cannot shift positions; the
position-independent pieces that are the default are tested in test_pieces.py.

One engine (model) is loaded for the module; `close_context()` drops the in-memory KV so that an ask has to go
through the page store on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine_support import (TASKQ_FILES as FILES, TASKQ_QUESTION as QUESTION, Cold, cold_ask, engine_settings,
                            fresh_copy, git, kill_when, saved_kv_files)
from repochat.answer.ask import AskResult, ask, status_plan
from repochat.config import Settings
from repochat.engine.session import Engine
from repochat.errors import RepositoryError
from repochat.repo.history import stability_order
from repochat.answer.prompt import Prompter, render_file
from repochat.answer.status import repository_status

pytestmark = pytest.mark.model



def page_settings(cache_dir: Path, **changes: object) -> Settings:
    return engine_settings(cache_dir, kv_pieces=False, **changes)


@pytest.fixture(scope="module")
def cold(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Cold:
    return cold_ask(engine, tmp_path_factory.mktemp("cold"), kv_pieces=False)



def _ask_from_disk(engine: Engine, repo: Path, settings: Settings, question: str = QUESTION, **kwargs) -> AskResult:
    engine.close_context()  # nothing in memory: the prefix must come from the page store
    return ask(repo, question, settings, engine=engine, **kwargs)


def _token_offset_of(engine: Engine, repo: Path, path: str) -> int:
    """Where ``path`` starts in the prefix token stream (head + files in stability order)."""
    prompter = Prompter(engine.model, engine.model_path)
    order = stability_order(repo, [p for p in FILES])
    before = [render_file(p, (repo / p).read_text()) for p in order[:order.index(path)]]
    return len(prompter.whole(before).tokens)


def test_cold_ask_prefills_every_page_and_saves_it(cold: Cold) -> None:
    coverage = cold.result.coverage
    assert coverage["mode"] == "whole" and coverage["cache"] == "miss"
    assert coverage["files_in_context"] == len(FILES)
    assert coverage["prefilled_tokens"] == coverage["repo_tokens"] > 256
    assert coverage["restored_tokens"] == 0
    assert coverage["pages"] == -(-coverage["repo_tokens"] // 256) == coverage["pages_saved"]
    assert ("prefill", coverage["pages"], coverage["pages"]) in cold.progress
    assert cold.result.answer.strip()
    assert 0 < coverage["ttft_s"] <= coverage["total_s"]


def test_warm_ask_restores_every_page_and_answers_identically(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    warm = _ask_from_disk(engine, repo, settings)
    assert warm.coverage["cache"] == "hit"
    assert warm.coverage["restored_tokens"] == cold.result.coverage["repo_tokens"]
    assert warm.coverage["prefilled_tokens"] == 0
    # greedy decoding after a restored prefix gives exactly the uninterrupted run's answer
    assert warm.answer == cold.result.answer


def test_status_reports_the_cached_chain(cold: Cold) -> None:
    report = status_plan(cold.repo, cold.settings)
    assert report["mode"] == "whole" and report["cache"] == "hit"
    assert report["pages_cached"] == report["pages"] == cold.result.coverage["pages"]
    assert report["repo_tokens"] == cold.result.coverage["repo_tokens"]


def test_status_without_an_index_still_reports_the_plan(cold: Cold) -> None:
    report = repository_status(cold.repo, cold.settings)  # whole-repository asks never built an index here
    assert "no index yet" in report["index"]["state"]
    assert report["plan"]["mode"] == "whole" and report["plan"]["cache"] == "hit"


def test_edit_recomputes_only_from_the_edited_files_page(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    edited = "README.md"  # committed last, so it is last in stability order
    assert stability_order(repo, list(FILES))[-1] == edited
    (repo / edited).write_text(FILES[edited] + "\nRetries back off exponentially.\n")
    start = _token_offset_of(engine, repo, edited)
    kept_pages = start // 256
    result = _ask_from_disk(engine, repo, settings, "What does run_once return?")
    assert result.coverage["cache"] == "partial"
    assert result.coverage["restored_tokens"] == kept_pages * 256
    assert result.coverage["prefilled_tokens"] == result.coverage["repo_tokens"] - kept_pages * 256


def test_editing_an_old_file_moves_it_last_and_keeps_the_pages_before_it(cold: Cold, engine: Engine,
                                                                         tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    (repo / "taskq/worker.py").write_text(FILES["taskq/worker.py"].replace("MAX_RETRIES = 3", "MAX_RETRIES = 5"))
    git(repo, "commit", "-q", "-am", "more retries", when=1_800_000_000)
    start = _token_offset_of(engine, repo, "taskq/worker.py")
    old_start_page = _token_offset_of(engine, cold.repo, "taskq/worker.py") // 256
    result = _ask_from_disk(engine, repo, settings, "What is MAX_RETRIES?")
    assert start > _token_offset_of(engine, cold.repo, "taskq/worker.py")  # it moved to the end
    assert result.coverage["restored_tokens"] == old_start_page * 256


def test_editing_a_file_appends_its_new_version_after_every_cached_page(cold: Cold, engine: Engine,
                                                                              tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    assert _ask_from_disk(engine, repo, settings).coverage["cache"] == "hit"  # lays out and remembers the layout
    assert stability_order(repo, list(FILES))[-2] == "taskq/worker.py"  # README.md comes after it
    (repo / "taskq/worker.py").write_text(FILES["taskq/worker.py"].replace("MAX_RETRIES = 3", "MAX_RETRIES = 5"))
    git(repo, "commit", "-q", "-am", "more retries", when=1_800_000_000)
    result = _ask_from_disk(engine, repo, settings, "What is MAX_RETRIES?")
    kept = cold.result.coverage["repo_tokens"] // 256 * 256  # every full page of the cached prefix
    assert result.coverage["files_appended"] == 1 and result.coverage["files_in_context"] == len(FILES)
    assert result.coverage["restored_tokens"] == kept
    assert result.coverage["prefilled_tokens"] == result.coverage["repo_tokens"] - kept
    # the model reads the appended copy as the current one
    assert re.search(r"\b5\b", result.answer) and not re.search(r"MAX_RETRIES\W+3\b", result.answer)


def test_a_deleted_file_is_named_after_the_cached_pages_and_leaves_the_context(cold: Cold, engine: Engine,
                                                                             tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    _ask_from_disk(engine, repo, settings)
    git(repo, "rm", "-q", "taskq/results.py")
    git(repo, "commit", "-q", "-m", "drop the result store", when=1_800_000_000)
    result = _ask_from_disk(engine, repo, settings, "Quote the first line of taskq/results.py, citing it.")
    assert result.coverage["files_appended"] == 1 and result.coverage["files_in_context"] == len(FILES) - 1
    assert result.coverage["restored_tokens"] == cold.result.coverage["repo_tokens"] // 256 * 256
    assert not any(c["valid"] for c in result.citations if c["path"] == "taskq/results.py")
    report = status_plan(repo, settings)  # status reads the same remembered layout
    assert report["cache"] == "hit" and report["files_appended"] == 1


def test_damaged_checkpoint_is_detected_and_recomputed(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    pages = sorted((tmp_path / "cache" / "kv").rglob("*.kvp"), key=lambda p: p.name)
    victim = pages[2]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = _ask_from_disk(engine, repo, settings)
    assert result.coverage["restored_tokens"] == 2 * 256
    assert result.coverage["prefilled_tokens"] == cold.result.coverage["repo_tokens"] - 2 * 256
    assert any("damaged" in notice for notice in result.coverage["notices"])
    assert result.answer == cold.result.answer
    again = _ask_from_disk(engine, repo, settings)  # the recomputed page was written back
    assert again.coverage["cache"] == "hit"


def test_ctrl_c_during_prefill_keeps_the_pages_written(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    settings = page_settings(tmp_path / "cache", model=cold.settings.model, threads=1)

    def interrupt_after_three_pages(stage: str, done: int, _total: int) -> None:
        if stage == "prefill" and done == 3:  # raised after the third page was computed and handed to the writer
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _ask_from_disk(engine, repo, settings, on_progress=interrupt_after_three_pages)
    resumed = _ask_from_disk(engine, repo, settings)
    assert resumed.coverage["restored_tokens"] == 3 * 256
    assert resumed.answer == cold.result.answer


def immutable(path: Path, on: bool) -> bool:
    """chattr +i / -i on a tree: read-only even for root (chmod is not), as a read-only mount would be."""
    done = subprocess.run(["chattr", "-R", "+i" if on else "-i", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_read_only_page_cache_still_answers_from_its_pages(cold: Cold, engine: Engine, tmp_path: Path) -> None:
    repo, settings = fresh_copy(cold, tmp_path)
    cache = tmp_path / "cache"
    if not immutable(cache, True):
        pytest.skip("this filesystem has no immutable flag (chattr)")
    try:
        result = _ask_from_disk(engine, repo, settings)  # page timestamps cannot be updated
        assert result.coverage["cache"] == "hit" and result.answer == cold.result.answer
        assert repository_status(repo, settings)["plan"]["mode"] == "whole"
        (repo / "taskq" / "worker.py").write_text((repo / "taskq" / "worker.py").read_text() + "\n# edited\n")
        edited = _ask_from_disk(engine, repo, settings)  # new pages cannot be saved: a notice, not an error
        assert edited.answer and edited.coverage["prefilled_tokens"] > 0
        assert any("could not save KV pages" in notice for notice in edited.coverage["notices"])
    finally:
        immutable(cache, False)


def test_kill_9_during_prefill_keeps_every_finished_page(cold: Cold, tmp_path: Path) -> None:
    """A real `repochat ask` process killed mid-prefill: the next one restores what it saved and answers."""
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    env = {**os.environ, "REPOCHAT_CACHE_DIR": str(tmp_path / "cache"), "REPOCHAT_PAGE_TOKENS": "256",
           "REPOCHAT_THREADS": "1", "REPOCHAT_MAX_ANSWER_TOKENS": "48", "REPOCHAT_KV_PIECES": "false"}
    command = [sys.executable, "-m", "repochat", "ask", "-C", str(repo), "--model", cold.settings.model,
               "--effort", "high", "--json", QUESTION]
    kill_when(command, env, lambda: len(saved_kv_files(tmp_path / "cache")) >= 2, "page saved")
    saved = len(saved_kv_files(tmp_path / "cache"))
    assert 2 <= saved < cold.result.coverage["pages"], "the ask finished before it could be killed"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    coverage = json.loads(done.stdout)["coverage"]
    assert coverage["restored_tokens"] >= 2 * 256 and coverage["cache"] == "partial"


def test_in_memory_prefix_is_reused_by_the_next_question(cold: Cold, engine: Engine) -> None:
    ask(cold.repo, "What does ResultStore.get return for an unknown id?", cold.settings, engine=engine)
    second = ask(cold.repo, "Which module imports heapq?", cold.settings, engine=engine)
    assert second.coverage["cache"] == "hit" and second.coverage["prefilled_tokens"] == 0


def test_japanese_question_is_answered(cold: Cold, engine: Engine) -> None:
    streamed: list[str] = []
    result = ask(cold.repo, "失敗したジョブは最大何回再試行されますか？", cold.settings, engine=engine,
                 on_text=streamed.append)
    assert result.answer.strip() and "".join(streamed) == result.answer
    assert result.coverage["cache"] == "hit"


def test_citations_are_marked_against_the_context(cold: Cold, engine: Engine) -> None:
    result = ask(cold.repo, "Quote the line of taskq/worker.py that sets MAX_RETRIES, citing it as path:line.",
                 cold.settings, engine=engine)
    # The question asks for a citation and the answer's Sources line cites what it names: none is a failure, not a pass
    assert result.citations, result.answer
    lengths = {path: len(text.splitlines()) for path, text in FILES.items()}
    for citation in result.citations:
        really_shown = citation["path"] in lengths and 1 <= citation["start"] <= citation["end"] <= lengths[
            citation["path"]]
        assert citation["valid"] == really_shown, citation
    line = FILES["taskq/worker.py"].splitlines().index("MAX_RETRIES = 3") + 1
    assert any(c["valid"] and c["path"] == "taskq/worker.py" and c["start"] <= line <= c["end"]
               for c in result.citations), result.answer


def test_code_the_answer_names_is_referenced_where_it_is_defined(cold: Cold, engine: Engine) -> None:
    result = ask(cold.repo, "Which method of Queue returns the next job that is due?", cold.settings, engine=engine)
    assert result.references, result.answer
    for reference in result.references:
        assert reference["symbol"].rsplit(".", 1)[-1] in result.answer
        lines = FILES[reference["path"]].splitlines()
        assert 1 <= reference["start"] <= reference["end"] <= len(lines)
        assert reference["symbol"].rsplit(".", 1)[-1] in lines[reference["start"] - 1]  # the definition's line


def test_empty_repository_is_a_clear_error(tmp_path: Path, engine: Engine) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q")
    with pytest.raises(RepositoryError, match="no readable text files"):
        ask(root, "What is here?", page_settings(tmp_path / "cache", model=str(engine.model_path)), engine=engine)


def test_low_effort_answers_from_retrieved_excerpts_and_caches_them(cold: Cold, engine: Engine,
                                                                     tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    settings = page_settings(tmp_path / "cache", model=cold.settings.model, threads=1, embeddings=False,
                             index_dir=str(tmp_path / "index"))
    question = "What does run_once do when job.run raises?"
    first = _ask_from_disk(engine, repo, settings, question, effort="low")
    assert first.coverage["mode"] == "retrieval"
    assert first.coverage["files_in_context"] == 0 and first.coverage["files_retrieved"] >= 1
    assert first.coverage["files_retrieved"] + first.coverage["files_left_out"] == len(FILES)
    assert first.coverage["cache"] == "miss"
    second = _ask_from_disk(engine, repo, settings, question, effort="low")
    assert second.coverage["cache"] == "hit" and second.answer == first.answer


@pytest.mark.parametrize("effort", ["auto", "low"])
def test_every_answer_ends_with_sources_that_were_in_the_context(cold: Cold, engine: Engine, tmp_path: Path,
                                                                  effort: str) -> None:
    repo, settings = cold.repo, cold.settings
    if effort == "low":  # retrieval mode: an index of its own, the excerpts are the candidates
        settings = page_settings(tmp_path / "cache", model=cold.settings.model, threads=1, embeddings=False,
                                 index_dir=str(tmp_path / "index"))
    lengths = {path: len(text.splitlines()) for path, text in FILES.items()}
    for question in (QUESTION, "Which method of Queue returns the next job that is due?", "What is taskq?"):
        streamed: list[str] = []
        result = ask(repo, question, settings, engine=engine, effort=effort, on_text=streamed.append)
        assert result.coverage["mode"] == ("whole" if effort == "auto" else "retrieval")
        assert "".join(streamed) == result.answer and "\nSources: " in result.answer
        trailer = result.answer.rsplit("Sources: ", 1)[1]
        assert 1 <= len(trailer.split(", ")) <= 3 and 0 < result.coverage["sources_tokens"] < 64
        assert result.citations and all(c["valid"] for c in result.citations), result.answer
        for citation in result.citations:
            assert 1 <= citation["start"] <= citation["end"] <= lengths[citation["path"]], citation
