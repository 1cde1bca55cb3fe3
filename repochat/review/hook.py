"""Install and remove the git pre-commit hook that runs `repochat review --staged`.

An existing pre-commit hook is never overwritten: it is renamed to ``pre-commit.repochat-previous`` and our hook runs
it first (its failure stops the commit, as before), then the review. Uninstalling puts it back. The hook calls the
Python that installed it (``python -m repochat``), so it works from GUIs and shells whose PATH lacks the venv, and
falls back to ``repochat`` on PATH when that interpreter is gone.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import RepochatError, RepositoryError
from .diff import git_output

HOOK_NAME = "pre-commit"
PREVIOUS_NAME = "pre-commit.repochat-previous"
MARKER = "# repochat pre-commit hook"

_TEMPLATE = """#!/bin/sh
{marker} (written by `repochat hook install`; `repochat hook uninstall` restores any previous hook)
hooks_dir=$(dirname "$0")
if [ -x "$hooks_dir/{previous}" ]; then
    "$hooks_dir/{previous}" "$@" || exit $?
fi
if [ -x {python} ]; then
    exec {python} -m repochat review --staged{args}
fi
if command -v repochat >/dev/null 2>&1; then
    exec repochat review --staged{args}
fi
echo "repochat: not installed; commit not reviewed" >&2
exit 0
"""


class HookError(RepochatError):
    """The hook cannot be installed or removed as asked."""


@dataclass(frozen=True)
class HookState:
    path: Path
    installed: bool  # our hook is in place
    chained: Path | None  # the previous hook our hook runs first


def hooks_dir(root: Path) -> Path:
    """Where git looks for hooks (core.hooksPath honoured; worktrees share the main repository's hooks)."""
    try:
        raw = git_output(root, "rev-parse", "--git-path", "hooks").decode().strip()
    except RepochatError as exc:
        raise RepositoryError(f"{root}: not a git repository") from exc
    path = Path(raw)
    return path if path.is_absolute() else root / path


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def hook_state(root: Path) -> HookState:
    directory = hooks_dir(root)
    hook, previous = directory / HOOK_NAME, directory / PREVIOUS_NAME
    return HookState(hook, is_ours(hook), previous if previous.exists() else None)


def hook_script(extra_args: list[str] | None = None) -> str:
    args = "".join(" " + shlex.quote(a) for a in extra_args or [])
    return _TEMPLATE.format(marker=MARKER, previous=PREVIOUS_NAME, python=shlex.quote(sys.executable), args=args)


def install(root: Path, extra_args: list[str] | None = None) -> HookState:
    """Write the hook (again, if ours is there: options may have changed), keeping a foreign hook as the chained one."""
    directory = hooks_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    hook, previous = directory / HOOK_NAME, directory / PREVIOUS_NAME
    if (hook.exists() or hook.is_symlink()) and not is_ours(hook):
        if previous.exists():
            raise HookError(f"{previous} already exists; move it away before installing")
        os.replace(hook, previous)
    temporary = hook.with_name(HOOK_NAME + ".repochat-tmp")
    temporary.write_text(hook_script(extra_args), encoding="utf-8")
    temporary.chmod(temporary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(temporary, hook)
    return hook_state(root)


def uninstall(root: Path) -> HookState:
    """Remove our hook and put the chained one back; a hook that is not ours is left alone (HookError)."""
    directory = hooks_dir(root)
    hook, previous = directory / HOOK_NAME, directory / PREVIOUS_NAME
    if not is_ours(hook):
        reason = "is not repochat's" if hook.exists() else "does not exist"
        raise HookError(f"{hook} {reason}; nothing to uninstall")
    hook.unlink()
    if previous.exists() or previous.is_symlink():
        os.replace(previous, hook)
    return hook_state(root)
