"""Shared fixtures: real git repositories in temporary folders; the user's environment and folders kept out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import platformdirs
import pytest

from repo_support import git, write_files

# The developer's own REPOCHAT_* settings must not change what a test sees (nor what its subprocesses inherit).
for _name in [name for name in os.environ if name.startswith("REPOCHAT_")]:
    del os.environ[_name]
# `repochat index` computes KV pieces after indexing where index_kv (default auto) says so: a minute of model work
# per small repository. Tests that index get it only when they ask (tests/test_kv_warm.py).
os.environ["REPOCHAT_INDEX_KV"] = "off"


@pytest.fixture(scope="session", autouse=True)
def user_folders_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user's cache and config folders (platformdirs: the default cache_dir, its KV pages and models, the index
    locks) in this run's temp dir, so that no test writes to the real ones. The cache's models/ is the run's shared
    model folder, so the default model is assembled once per run for every test, however it locates the model."""
    from engine_support import shared_models_dir

    base = tmp_path_factory.getbasetemp()
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(base / "user-cache"))
    patch.setenv("XDG_CONFIG_HOME", str(base / "user-config"))
    user_cache = Path(platformdirs.user_cache_dir("repochat"))
    user_cache.mkdir(parents=True)
    shared_models_dir(tmp_path_factory).mkdir(parents=True, exist_ok=True)
    (user_cache / "models").symlink_to(shared_models_dir(tmp_path_factory), target_is_directory=True)
    yield
    patch.undo()


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
