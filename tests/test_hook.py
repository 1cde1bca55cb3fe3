"""The pre-commit hook through real `git commit`: install, chaining an existing hook (which still runs and can still
block), uninstall restoring it byte for byte, core.hooksPath, and the first commit of a repository without an index
(the review builds one). These commits never reach the model: REPOCHAT_MODEL names a file that does not exist, so
the review stops with one line and the commit goes through, or is blocked with --strict."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from repo_support import GIT_ENV, git, write_files
from repochat.cli.main import cli
from repochat.config import Settings
from repochat.index.indexer import update_index
from repochat.index.store import IndexStore
from repochat.review.hook import MARKER, PREVIOUS_NAME, HookError, hook_state, install, uninstall

NO_MODEL = {"REPOCHAT_MODEL": "no-such-model.gguf"}
PREVIOUS = "#!/bin/sh\necho previous-hook-ran >> \"$(git rev-parse --show-toplevel)/hook.log\"\nexit {code}\n"



def commit(root: Path, message: str = "change", cache_dir: Path | None = None,
           extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """A real `git commit` that runs the hooks."""
    env = {**os.environ, **GIT_ENV, "HOME": str(root), "REPOCHAT_CACHE_DIR": str(cache_dir or root / ".cache"),
           **({} if cache_dir else NO_MODEL)}
    return subprocess.run(["git", "-C", str(root), "commit", "-m", message, *extra], capture_output=True, text=True,
                          env=env)


def stage_change(root: Path) -> None:
    write_files(root, {"a.py": "x = 2\n"})
    git(root, "add", "a.py")


def write_previous(root: Path, code: int = 0) -> Path:
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(PREVIOUS.format(code=code))
    hook.chmod(0o755)
    return hook


def test_first_commit_without_an_index_builds_one_then_passes(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    state = install(root)
    assert state.installed and state.chained is None and os.access(state.path, os.X_OK)
    stage_change(root)
    done = commit(root)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "repochat review: no index yet: built one (1 files" in output
    assert "repochat review: skipped: model unavailable" in output
    assert git(root, "log", "-1", "--format=%s").strip() == "change"
    assert IndexStore.open(root / ".repochat").file_rows()["a.py"]["status"] == "indexed"


def test_strict_hook_blocks_the_commit_when_the_model_is_missing(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    install(root, ["--strict"])
    stage_change(root)
    done = commit(root)
    assert done.returncode != 0
    assert git(root, "log", "-1", "--format=%s").strip() == "initial"


def test_existing_hook_is_chained_and_restored(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    original = write_previous(root).read_bytes()
    state = install(root)
    assert state.chained is not None and state.chained.name == PREVIOUS_NAME
    assert state.chained.read_bytes() == original
    install(root)  # again: still one chained hook, never our own hook chained to itself
    assert MARKER not in state.chained.read_text()
    stage_change(root)
    assert commit(root).returncode == 0
    assert (root / "hook.log").read_text() == "previous-hook-ran\n"
    after = uninstall(root)
    assert not after.installed and after.chained is None
    assert after.path.read_bytes() == original


def test_a_failing_chained_hook_still_blocks(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    write_previous(root, code=3)
    install(root)
    stage_change(root)
    assert commit(root).returncode != 0
    assert (root / "hook.log").read_text() == "previous-hook-ran\n"


def test_uninstall_leaves_a_foreign_hook_alone(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    with pytest.raises(HookError, match="does not exist"):
        uninstall(root)
    foreign = write_previous(root)
    with pytest.raises(HookError, match="not repochat's"):
        uninstall(root)
    assert foreign.read_text() == PREVIOUS.format(code=0)


def test_core_hooks_path_is_honoured(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    git(root, "config", "core.hooksPath", "githooks")
    state = install(root)
    assert state.path == root / "githooks" / "pre-commit"
    assert hook_state(root).installed


def test_cli_install_and_uninstall(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    write_previous(root)
    runner = CliRunner()
    done = runner.invoke(cli, ["hook", "install", "-C", str(root), "--fail-on", "warning"])
    assert done.exit_code == 0, done.output
    assert "runs the previous hook" in done.output
    assert "--fail-on warning" in (root / ".git" / "hooks" / "pre-commit").read_text()
    done = runner.invoke(cli, ["hook", "uninstall", "-C", str(root)])
    assert done.exit_code == 0 and "restored the previous hook" in done.output
    done = runner.invoke(cli, ["hook", "uninstall", "-C", str(root)])
    assert done.exit_code == 1 and done.output.startswith("repochat: error:")


def test_review_command_outputs_and_exit_codes_without_a_model_run(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n", "logo.png": b"\x00\x01"})
    stage_change(root)
    runner = CliRunner(env={**NO_MODEL, "REPOCHAT_CACHE_DIR": str(root / ".cache")})
    done = runner.invoke(cli, ["review", "-C", str(root), "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["ran"] is False and data["notice"].startswith("model unavailable")
    assert data["notes"][0].startswith("no index yet: built one")
    chosen = runner.invoke(cli, ["review", "-C", str(root), "--json", "--model", "other-model.gguf"])
    assert "other-model.gguf" in json.loads(chosen.stdout)["notice"]  # --model reaches the review's settings
    assert runner.invoke(cli, ["review", "-C", str(root), "--strict"]).exit_code == 2
    sarif = json.loads(runner.invoke(cli, ["review", "-C", str(root), "--sarif"]).stdout)
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False
    bad = runner.invoke(cli, ["review", "-C", str(root), "--range", "nope..HEAD"])
    assert bad.exit_code == 2 and bad.output.strip() == "repochat: error: unknown revision 'nope'"
    update_index(root, Settings(embeddings=False, cache_dir=str(root / ".cache")))
    git(root, "commit", "-q", "--no-verify", "-m", "one")
    write_files(root, {"logo.png": b"\x00\x02"})
    git(root, "commit", "-q", "-am", "two")  # only a binary change in the range: nothing for the model
    done = runner.invoke(cli, ["review", "-C", str(root), "--range", "HEAD~1..HEAD"])
    assert done.exit_code == 0, done.output
    assert "not reviewed: logo.png (binary)" in done.output
    assert "0 file(s) reviewed" in done.output


def test_review_patch_of_a_file_that_does_not_apply_is_a_clean_refusal(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    patch = root.parent / "bad.patch"
    patch.write_text("diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-y = 1\n+y = 2\n")
    result = CliRunner().invoke(cli, ["review", "--patch", str(patch), "-C", str(root)])
    assert result.exit_code == 2 and "does not apply" in result.output and "Traceback" not in result.output
