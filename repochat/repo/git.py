"""The one way repochat runs git: ``git -C <root> ...`` with its output captured.

Two forms, because callers want two things: ``run_git`` for commands whose failure the user must hear about (it
raises GitError, one line: which git command failed and git's last word on why), ``git_text`` for questions whose
"no" is an answer (not a repository, git not installed: None).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import RepochatError


class GitError(RepochatError):
    """A git command failed, or git is not installed. ``stderr`` keeps git's full complaint for callers that
    look into it (a refusal over ownership names the folder there)."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def run_git(root: Path, *args: str, data: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    """Stdout of ``git -C root *args`` (``data`` on stdin, ``env`` replacing the environment when given)."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], input=data, capture_output=True, env=env)
    except FileNotFoundError as exc:
        raise GitError("git is not installed") from exc
    if done.returncode:
        stderr = done.stderr.decode("utf-8", "replace")
        lines = stderr.strip().splitlines()
        raise GitError(f"git {args[0]} failed: {lines[-1] if lines else done.returncode}", stderr)
    return done.stdout


def git_text(root: Path, *args: str) -> str | None:
    """Stdout of ``git -C root *args`` as text, or None when git fails or is missing. Undecodable bytes in paths
    survive as surrogates, so a name read here opens the same file again."""
    try:
        return run_git(root, *args).decode("utf-8", errors="surrogateescape")
    except (GitError, OSError):  # OSError: a git that is there but cannot run (permissions, a broken binary)
        return None
