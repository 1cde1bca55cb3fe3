"""Shared fixtures: real git repositories in temporary folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from repo_support import git, write_files

# `repochat index` computes KV pieces after indexing where index_kv (default auto) says so: a minute of model work
# per small repository. Tests that index get it only when they ask (tests/test_kv_warm.py).
os.environ.setdefault("REPOCHAT_INDEX_KV", "off")


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


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    """The real default model loaded once per test module (one thread: the tests share the cores)."""
    from engine_support import default_model_path, engine_settings
    from repochat.engine.session import Engine

    model_path = default_model_path(tmp_path_factory)
    settings = engine_settings(tmp_path_factory.mktemp("unused"), model=str(model_path), threads=1)
    with Engine(model_path, settings) as loaded:
        yield loaded
