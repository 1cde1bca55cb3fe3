"""The one git runner, against real git in temporary folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from repochat.repo.git import GitError, git_text, run_git


def test_a_failed_command_is_one_line_naming_the_command_and_keeps_git_s_words(tmp_path: Path) -> None:
    with pytest.raises(GitError) as caught:
        run_git(tmp_path, "rev-parse", "HEAD")  # tmp_path is no repository
    message = str(caught.value)
    assert message.startswith("git rev-parse failed: fatal: not a git repository")
    assert "\n" not in message
    assert "not a git repository" in caught.value.stderr


def test_a_question_git_cannot_answer_is_none(tmp_path: Path) -> None:
    assert git_text(tmp_path, "rev-parse", "--show-toplevel") is None


def test_data_goes_to_git_s_stdin(tmp_path: Path) -> None:
    # git's blob hash of "hello\n", a fixed value: the bytes reached git unchanged
    assert run_git(tmp_path, "hash-object", "--stdin", data=b"hello\n") == b"ce013625030ba8dba906f756967f9e9ca394464a\n"


def test_an_undecodable_file_name_comes_back_as_the_same_bytes(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"plain.py": "x = 1\n"})
    name = b"caf\xe9.py"  # Latin-1, not UTF-8
    (root / os.fsdecode(name)).write_bytes(b"y = 2\n")
    listing = git_text(root, "ls-files", "-z", "--others")
    assert listing is not None
    assert [os.fsencode(p) for p in listing.split("\0") if p] == [name]
