"""Shared fixtures: real git repositories in temporary folders."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from repo_support import git, write_files


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """make_repo({path: content}, git=True, commit=True) -> root of a fresh repository."""
    counter = iter(range(1000))

    def make(files: dict[str, str | bytes], use_git: bool = True, commit: bool = True) -> Path:
        root = tmp_path / f"repo{next(counter)}"
        root.mkdir()
        write_files(root, files)
        if use_git:
            git(root, "init", "-q", "-b", "main")
            if commit and files:
                git(root, "add", "-A")
                git(root, "commit", "-q", "-m", "initial")
        return root

    return make
