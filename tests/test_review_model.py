"""Review end to end on the real default model, through real `git commit` with the installed hook.

- Planted bugs, each in a fresh repository without an index, on its first hooked commit (one off-by-one, one misspelled attribute, one removed null check a caller relies on): the finding
  must name the right file and line in a majority of them (tests/bench/bench_review.py runs the full fixed set and
  prints the rate and the time per review).
- A clean change is committed (nothing at 'error').
- A commit with a binary file, a rename, a deletion and a latin-1 file; an empty commit; a merge commit finishing
  a conflicted merge: all reviewed (or listed as not reviewed) without a crash.

The model is assembled once for the module; each hook run loads it itself (a few seconds for the 0.5B model).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from engine_support import default_model_path
from repo_support import git, write_files
from review_cases import CASES, CLEAN_EDIT, PlantedBug
from test_hook import commit
from repochat.review.hook import install

pytestmark = pytest.mark.model
FINDING = re.compile(r"^(?P<path>\S+):(?P<line>\d+): (?P<severity>error|warning|info): ", re.M)
SUMMARY = re.compile(r"repochat review \(staged\): (\d+) finding\(s\), (\d+) at or above '(\w+)', (\d+) file\(s\) "
                     r"reviewed in ([\d.]+)s")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """REPOCHAT_CACHE_DIR for the hook: its models/ holds the assembled default model."""
    return default_model_path(tmp_path_factory).parent.parent


def hooked_repo(make_repo: Callable[..., Path], files: dict[str, str | bytes]) -> Path:
    """A fresh repository with the hook installed and no index: its first hooked commit builds one."""
    root = make_repo({**files, ".gitignore": ".repochat/\n.cache/\nhook.log\n"})
    install(root)
    return root


def commit_output(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert SUMMARY.search(output), output  # the review ran and said how long it took
    return output


def planted_hit(make_repo: Callable[..., Path], cache_dir: Path, case: PlantedBug) -> bool:
    root = hooked_repo(make_repo, case.files)
    write_files(root, case.edit)
    git(root, "add", *case.edit)
    done = commit(root, f"plant {case.name}", cache_dir)
    output = commit_output(done)
    assert "repochat review: no index yet: built one" in output  # reviewed from the very first commit
    findings = list(FINDING.finditer(output))
    blocked = any(m["severity"] == "error" for m in findings)  # the default fail_on
    assert (done.returncode != 0) == blocked, output
    return any(m["path"] == case.path and int(m["line"]) in case.lines for m in findings)


def test_planted_bugs_reported_on_the_right_line_in_a_majority(make_repo: Callable[..., Path],
                                                                 cache_dir: Path) -> None:
    chosen = [next(c for c in CASES if c.kind == kind)
              for kind in ("off-by-one", "misspelled attribute", "removed null check")]
    hits = [case.name for case in chosen if planted_hit(make_repo, cache_dir, case)]
    assert len(hits) >= 2, f"found only {hits} of {[c.name for c in chosen]}"


def test_clean_change_is_committed(make_repo: Callable[..., Path], cache_dir: Path) -> None:
    base = CASES[0]
    root = hooked_repo(make_repo, base.files)
    write_files(root, CLEAN_EDIT)
    git(root, "add", *CLEAN_EDIT)
    done = commit(root, "clean", cache_dir)
    output = commit_output(done)
    assert done.returncode == 0, output
    assert int(SUMMARY.search(output)[2]) == 0  # type: ignore[index]
    assert git(root, "log", "-1", "--format=%s").strip() == "clean"


def test_binary_rename_deletion_latin1_and_empty_commits(make_repo: Callable[..., Path], cache_dir: Path) -> None:
    root = hooked_repo(make_repo, {"img.bin": b"\x00\x01\x02", "old_name.py": "A = 1\n", "gone.py": "B = 2\n",
                                   "main.py": "print('hi')\n"})
    write_files(root, {"img.bin": b"\x00\x01\x03\x04", "legacy.py": "# r\xe9sum\xe9\nNAME = 'caf\xe9'\n".encode(
        "latin-1")})
    git(root, "mv", "old_name.py", "new_name.py")
    git(root, "rm", "-q", "gone.py")
    git(root, "add", "img.bin", "legacy.py")
    output = commit_output(commit(root, "mixed", cache_dir, ("--no-status",)))
    assert "not reviewed: img.bin (binary)" in output
    assert "not reviewed: gone.py (deleted)" in output
    assert "not reviewed: new_name.py (no content change)" in output
    assert int(SUMMARY.search(output)[4]) == 1  # type: ignore[index]  # legacy.py
    done = commit(root, "empty", cache_dir, ("--allow-empty",))
    assert done.returncode == 0 and int(SUMMARY.search(commit_output(done))[4]) == 0  # type: ignore[index]


def test_commit_finishing_a_conflicted_merge(make_repo: Callable[..., Path], cache_dir: Path) -> None:
    root = hooked_repo(make_repo, {"limits.py": "MAX_ITEMS = 10\n"})
    git(root, "checkout", "-q", "-b", "side")
    write_files(root, {"limits.py": "MAX_ITEMS = 20\n"})
    git(root, "commit", "-q", "--no-verify", "-am", "side")
    git(root, "checkout", "-q", "main")
    write_files(root, {"limits.py": "MAX_ITEMS = 30\n"})
    git(root, "commit", "-q", "--no-verify", "-am", "main")
    merge = subprocess.run(["git", "-C", str(root), "merge", "side"], capture_output=True, text=True)
    assert merge.returncode != 0  # conflict: the merge commit is made by `git commit`, through the hook
    write_files(root, {"limits.py": "MAX_ITEMS = 25\n"})
    git(root, "add", "limits.py")
    done = commit(root, "merge side", cache_dir, ("--no-edit",))
    output = commit_output(done)
    assert int(SUMMARY.search(output)[4]) == 1  # type: ignore[index]
    if done.returncode == 0:
        parents = git(root, "log", "-1", "--format=%P").split()
        assert len(parents) == 2
