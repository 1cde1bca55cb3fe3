"""What a review looks at, read from real git repositories: staged / work-tree / range targets, renames, deletions,
binary and non-UTF-8 files, merge and empty commits, the first commit of a repository, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from repo_support import git, write_files
from repochat.errors import ReviewError
from repochat.review.diff import STAGED, WORKTREE, Hunk, load_change

BASE = {"calc.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
        "notes.txt": "one\ntwo\nthree\n", "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00binary"}


def by_path(root: Path, target: str = STAGED) -> dict:
    return {f.path: f for f in load_change(root, target).files}


def test_staged_modification_has_new_side_line_numbers(make_repo: Callable[..., Path]) -> None:
    root = make_repo(BASE)
    write_files(root, {"calc.py": "def add(a, b):\n    return a + b + 0\n\n\ndef sub(a, b):\n    return a - b\n"})
    git(root, "add", "calc.py")
    change = by_path(root)["calc.py"]
    assert change.status == "M"
    assert change.hunks == [Hunk(2, 1, ("    return a + b",))]
    assert change.added_lines() == {2}


def test_staged_content_not_worktree(make_repo: Callable[..., Path]) -> None:
    root = make_repo(BASE)
    write_files(root, {"notes.txt": "one\nTWO\nthree\n"})
    git(root, "add", "notes.txt")
    write_files(root, {"notes.txt": "one\nTWO\nthree\nunstaged line\n"})
    staged = by_path(root)["notes.txt"]
    assert staged.new_text == "one\nTWO\nthree\n"
    worktree = by_path(root, WORKTREE)["notes.txt"]
    assert worktree.new_text is not None and worktree.new_text.endswith("unstaged line\n")


def test_rename_deletion_binary_and_latin1(make_repo: Callable[..., Path]) -> None:
    root = make_repo(BASE)
    git(root, "mv", "notes.txt", "docs.txt")
    git(root, "rm", "-q", "calc.py")
    write_files(root, {"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00changed", "legacy.py": "# caf\xe9\nx = 1\n".encode(
        "latin-1")})
    git(root, "add", "logo.png", "legacy.py")
    files = by_path(root)
    assert files["docs.txt"].status == "R" and files["docs.txt"].old_path == "notes.txt"
    assert files["docs.txt"].hunks == []  # a pure rename changes no line
    assert files["calc.py"].status == "D" and files["calc.py"].skip_reason == "deleted"
    assert files["logo.png"].skip_reason == "binary" and files["logo.png"].new_text is None
    legacy = files["legacy.py"]
    assert legacy.skip_reason == "" and legacy.new_text == "# café\nx = 1\n"
    assert legacy.added_lines() == {1, 2}


def test_range_single_commit_and_merge(make_repo: Callable[..., Path]) -> None:
    root = make_repo(BASE)
    first = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "-b", "side")
    write_files(root, {"side.py": "SIDE = 1\n"})
    git(root, "add", "side.py")
    git(root, "commit", "-q", "-m", "side")
    git(root, "checkout", "-q", "main")
    write_files(root, {"notes.txt": "one\ntwo\nthree\nfour\n"})
    git(root, "commit", "-q", "-am", "four")
    git(root, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    merge = load_change(root, "HEAD")  # a merge commit is reviewed against its first parent
    assert [f.path for f in merge.files] == ["side.py"]
    assert {f.path for f in load_change(root, f"{first}..HEAD").files} == {"notes.txt", "side.py"}
    assert [f.path for f in load_change(root, "HEAD~1...side").files] == ["side.py"]


def test_empty_commit_and_nothing_staged(make_repo: Callable[..., Path]) -> None:
    root = make_repo(BASE)
    git(root, "commit", "-q", "--allow-empty", "-m", "empty")
    assert load_change(root, "HEAD").files == []
    assert load_change(root, STAGED).files == []


def test_first_commit_of_a_repository(make_repo: Callable[..., Path]) -> None:
    root = make_repo(BASE, commit=False)
    git(root, "add", "calc.py")
    files = by_path(root)
    assert list(files) == ["calc.py"] and files["calc.py"].status == "A"
    assert files["calc.py"].added_lines() == set(range(1, 7))


def test_bad_input_is_a_review_error(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    root = make_repo(BASE)
    with pytest.raises(ReviewError, match="unknown revision"):
        load_change(root, "nosuchbranch..HEAD")
    with pytest.raises(ReviewError, match="not a revision"):
        load_change(root, "--output=/tmp/x")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ReviewError, match="not a git work tree"):
        load_change(plain, STAGED)


def test_a_pasted_patch_becomes_a_reviewable_commit_without_touching_the_repository(make_repo) -> None:
    from repochat.review.diff import commit_from_patch, load_change

    root = make_repo({"calc.py": "def add(a, b):\n    return a + b\n"})
    (root / "calc.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    patch = git(root, "diff")
    git(root, "checkout", "--", "calc.py")
    head_before = git(root, "rev-parse", "HEAD")
    commit = commit_from_patch(root, patch)
    change = load_change(root, commit)
    assert [f.path for f in change.files] == ["calc.py"] and change.files[0].added_lines() == {2}
    assert git(root, "rev-parse", "HEAD") == head_before and git(root, "status", "--porcelain") == ""
