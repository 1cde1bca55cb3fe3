"""List the files of a repository that may be read: git's view when it is a repository, a plain walk otherwise."""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from ..config import Settings
from ..errors import RepositoryError
from ..records import SourceFile
from .filters import indexable_text, path_skip_reason

IGNORE_FILE = ".repochatignore"


@dataclass
class WalkResult:
    files: list[SourceFile]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> repository-relative paths

    def skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(path)


def check_root(path: Path) -> Path:
    """The resolved repository root, or a RepositoryError saying why it cannot be one."""
    if not path.exists():
        raise RepositoryError(f"{path}: no such directory")
    if not path.is_dir():
        raise RepositoryError(f"{path}: not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise RepositoryError(f"{path}: permission denied")
    return path.resolve()


def find_root(path: Path) -> Path:
    """The top of the git work tree containing path, or path itself when it is not in one."""
    path = check_root(path)
    top = _git(path, "rev-parse", "--show-toplevel")
    return Path(top.strip()).resolve() if top else path


def is_git_repository(root: Path) -> bool:
    return _git(root, "rev-parse", "--is-inside-work-tree") is not None


def walk_repository(root: Path, settings: Settings) -> WalkResult:
    """Files that may be indexed, sorted by path; everything left out is counted by reason."""
    root = check_root(root)
    candidates = _git_candidates(root)
    if candidates is None:
        candidates = _plain_candidates(root)
    ignore = _load_ignore(root)
    result = WalkResult(files=[])
    for rel in sorted(set(candidates)):
        reason = "ignored" if ignore and ignore.match_file(rel) else path_skip_reason(rel)
        reason = reason or _stat_file(root, rel, settings, result)
        if reason:
            result.skip(reason, rel)
    result.files.sort(key=lambda f: f.path)
    return result


def ignored_folder(root: Path, name: str) -> bool:
    """A top-level folder the walker finds nothing in: ignored by .repochatignore, or by git (.gitignore outside
    a git repository) while holding no tracked file. A watcher need not follow it (node_modules, .venv, build)."""
    folder = f"{name}/"
    ignore = _load_ignore(root)
    if ignore and ignore.match_file(folder):
        return True
    if not is_git_repository(root):
        spec = _gitignore_in(root)
        return bool(spec and spec.match_file(folder))
    ignored = _git(root, "check-ignore", "-q", "--", folder) is not None  # exit status 0: ignored
    return ignored and not _git(root, "ls-files", "--", folder)


def read_text(root: Path, rel: str) -> str | None:
    """A file's text when it may be indexed (not binary, not a secret, not generated), else None."""
    text, _reason = read_checked(root, rel)
    return text


def read_checked(root: Path, rel: str) -> tuple[str | None, str | None]:
    """(text, None) for an indexable file, (None, reason) otherwise. Reads the file once."""
    try:
        data = (root / rel).read_bytes()
    except FileNotFoundError:
        return None, "deleted"
    except OSError:
        return None, "unreadable"
    return indexable_text(data)


def _stat_file(root: Path, rel: str, settings: Settings, result: WalkResult) -> str | None:
    path = root / rel
    try:
        st = path.stat()
    except FileNotFoundError:
        return "deleted"  # tracked by git but gone from the work tree, or a dangling link
    except OSError as exc:
        return "symlink_loop" if exc.errno == errno.ELOOP else "unreadable"
    if path.is_symlink() and not _inside(root, path):
        return "symlink_outside"  # following it would read (and maybe send to a model) files outside the repository
    if not os.path.isfile(path):
        return "not_a_file"
    if st.st_size > settings.max_file_size:
        return "too_large"
    if not os.access(path, os.R_OK):
        return "unreadable"
    result.files.append(SourceFile(path=rel, size=st.st_size, mtime=st.st_mtime))
    return None


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.decode("utf-8", errors="surrogateescape")


def _git_candidates(root: Path) -> list[str] | None:
    """Tracked plus untracked-but-not-ignored files, as git sees them; None outside a git work tree."""
    if _git(root, "rev-parse", "--show-toplevel") is None:
        return None
    listing = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listing is None:
        return None
    return [p for p in listing.split("\0") if p and not p.startswith(".repochat/")]


def _plain_candidates(root: Path) -> list[str]:
    """Every file below root, honouring .gitignore files on the way down (no git needed)."""
    found: list[str] = []
    specs: dict[str, pathspec.PathSpec] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        spec = _gitignore_in(Path(dirpath))
        if spec:
            specs[rel_dir] = spec
        active = [(base, s) for base, s in specs.items() if rel_dir.startswith(base)]
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".repochat")
                             and not _ignored(active, rel_dir + d + "/"))
        found.extend(rel_dir + f for f in filenames if not _ignored(active, rel_dir + f))
    return found


def _ignored(active: list[tuple[str, pathspec.PathSpec]], rel: str) -> bool:
    return any(spec.match_file(rel[len(base):]) for base, spec in active)


def _gitignore_in(directory: Path) -> pathspec.PathSpec | None:
    try:
        lines = (directory / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.PathSpec.from_lines("gitignore", lines)


def _load_ignore(root: Path) -> pathspec.PathSpec | None:
    try:
        lines = (root / IGNORE_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.PathSpec.from_lines("gitignore", lines)
