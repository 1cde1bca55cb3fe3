"""Whole-repository review: the review part goes after the same prefix `repochat ask` caches, so the KV pages of
the unchanged files are restored from disk instead of prefilled; retrieval review when too much would be prefilled.

The content under review is what the prefix holds: the staged blobs (not the work-tree files) for a staged review,
the last commit's files for a range. Those are checked on real git repositories without the model; the reuse of
`ask`'s pages and the fallback run the real default model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest

from engine_support import default_model_path, engine_settings, git, make_repo
from repo_support import write_files
from review_cases import CASES
from repochat.answer.ask import ask
from repochat.config import Settings, load_settings
from repochat.engine.session import Engine
from repochat.index.indexer import update_index
from repochat.answer.prompt import Prompter, render_file
from repochat.answer.prefix import load_repository
from repochat.review.run import review
from repochat.review.diff import STAGED, load_change, side_contents
from repochat.review.mode import whole_refusal

# Stable code committed before the case's files, so that the unchanged part of the prefix spans whole pages.
UNITS = "\n".join(['"""Unit conversions used across the project."""', ""] + [
    f'def convert_{n}(value: float) -> float:\n    """Convert a reading of kind {n} to SI units."""\n'
    f"    return value * {n + 1}.5 + {n}\n\n" for n in range(12)])
# The case the default model finds most clearly in both modes (verdict margin +0.42 whole, +0.58 retrieval).
CASE = next(c for c in CASES if c.name == "client timeout")
PAGE_TOKENS = 256


# --- what the prefix holds (no model) ---------------------------------------------------------------------------
def test_staged_side_is_the_index_not_the_work_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "A = 1\n", "b.py": "B = 1\n", "c.py": "C = 1\n"})
    write_files(root, {"a.py": "A = 2\n"})
    git(root, "add", "a.py")
    write_files(root, {"a.py": "A = 3  # not staged\n", "new.py": "N = 1\n"})  # unstaged edit, untracked file
    (root / "c.py").unlink()  # deleted in the work tree only: still in the index
    texts = side_contents(root, load_change(root, STAGED).new_side)
    assert texts == {"a.py": "A = 2\n", "c.py": "C = 1\n", "new.py": None}
    repo = load_repository(root, Settings(), texts)
    shown = {f.path: f.text for f in repo.files}
    assert sorted(shown) == ["a.py", "b.py", "c.py"]
    assert "A = 2" in shown["a.py"] and "not staged" not in shown["a.py"]


def test_range_side_is_its_last_commit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "A = 1\n"})
    write_files(root, {"a.py": "A = 2\n", "b.py": "B = 2\n"})
    git(root, "add", "a.py", "b.py")
    git(root, "commit", "-q", "-m", "second")
    write_files(root, {"a.py": "A = 3\n"})
    git(root, "commit", "-q", "-am", "third")
    git(root, "rm", "-q", "b.py")
    git(root, "commit", "-q", "-m", "fourth")
    change = load_change(root, "HEAD~3..HEAD~2")
    repo = load_repository(root, Settings(), side_contents(root, change.new_side), rev=change.new_side)
    shown = {f.path: f.text for f in repo.files}
    assert sorted(shown) == ["a.py", "b.py"]
    assert "A = 2" in shown["a.py"] and "B = 2" in shown["b.py"]


def test_prefill_cap_decides_unless_effort_is_high() -> None:
    assert whole_refusal(4096, 4096, "auto") == ""
    assert "review_whole_max_prefill" in whole_refusal(4097, 4096, "auto")
    assert whole_refusal(100_000, 10, "high") == ""


def test_cap_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "repochat.toml").write_text("review_whole_max_prefill = 1500\n", encoding="utf-8")
    assert load_settings(tmp_path, environ={}).review_whole_max_prefill == 1500


# --- the real model ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    model_path = default_model_path(tmp_path_factory)
    settings = engine_settings(tmp_path_factory.mktemp("unused"), model=str(model_path), page_tokens=PAGE_TOKENS)
    with Engine(model_path, settings) as loaded:
        yield loaded


@dataclasses.dataclass
class AskedThenStaged:
    root: Path
    settings: Settings
    files: dict[str, str]  # in commit order: the changed file was committed last
    ask_prefix_tokens: int


@pytest.fixture(scope="module")
def asked_then_staged(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> AskedThenStaged:
    """A repository that `ask` was run on (its page chain on disk), then the case's bug staged."""
    base = tmp_path_factory.mktemp("whole-review")
    files = {".gitignore": ".repochat/\n", "units.py": UNITS,
             **{p: t for p, t in CASE.files.items() if p != CASE.path}, CASE.path: CASE.files[CASE.path]}
    root = make_repo(base / "repo", files)
    settings = engine_settings(base / "cache", model=str(engine.model_path), page_tokens=PAGE_TOKENS,
                               embeddings=False)
    update_index(root, settings)
    engine.close_context()
    asked = ask(root, "What does request_options return?", settings, engine=engine)
    assert asked.coverage["mode"] == "whole" and asked.coverage["pages_saved"] == asked.coverage["pages"] > 2
    write_files(root, CASE.edit)
    git(root, "add", *CASE.edit)
    return AskedThenStaged(root, settings, files, asked.coverage["prefilled_tokens"])


def _first_difference(left: list[int], right: list[int]) -> int:
    return next((i for i, (a, b) in enumerate(zip(left, right)) if a != b), min(len(left), len(right)))


@pytest.mark.model
def test_staged_review_restores_the_pieces_ask_cached(engine: Engine, asked_then_staged: AskedThenStaged) -> None:
    case = asked_then_staged
    engine.close_context()  # nothing in memory: the unchanged files must come from ask's pieces on disk
    report = review(case.root, case.settings, engine=engine)
    stats = report.stats
    assert report.ran, report.notice
    assert stats["mode"] == "whole", stats
    # ask's prefix and the staged one hold the same files; only the staged file's piece is new: every other file's
    # piece is restored, wherever it sits now, and the staged one is prefilled once, with the review part.
    prompter = Prompter(engine.model, engine.model_path)
    before = prompter.whole([render_file(p, t) for p, t in case.files.items()]).tokens
    after = prompter.whole([render_file(p, CASE.edit.get(p, t)) for p, t in case.files.items()]).tokens
    assert len(before) == case.ask_prefix_tokens
    staged = sum(len(prompter.content(render_file(p, text).text)) for p, text in CASE.edit.items()
                 if text != case.files.get(p))
    assert 0 < staged < len(after) / 2
    assert stats["restored_tokens"] == len(after) - staged, stats
    assert stats["repository_tokens"] == len(after)
    assert stats["prefilled_tokens"] == stats["prompt_tokens"] - stats["restored_tokens"]  # the rest, once
    assert any(f.path == CASE.path for f in report.findings), (report.findings, stats)


@pytest.mark.model
def test_low_prefill_cap_falls_back_to_retrieval(engine: Engine, asked_then_staged: AskedThenStaged) -> None:
    case = asked_then_staged
    settings = dataclasses.replace(case.settings, review_whole_max_prefill=1)
    report = review(case.root, settings, engine=engine)
    stats = report.stats
    assert report.ran, report.notice
    assert stats["mode"] == "retrieval", stats
    assert "review_whole_max_prefill" in stats["mode_reason"]
    assert stats["restored_tokens"] == 0 and stats["repository_tokens"] == 0 and stats["pages"] == 0
    assert stats["prefilled_tokens"] == stats["prompt_tokens"]
