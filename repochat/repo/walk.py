"""List the files of a repository that may be read: git's view when it is a repository, a plain walk otherwise."""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..errors import RepositoryError
from ..records import SourceFile
from .filters import indexable_text, path_skip_reason
from .git import GitError, git_text, run_git
from .ignorefile import IgnoreFile, read_ignore_file
from .safe_read import NotRegularFile, read_regular

IGNORE_FILE = ".repochatignore"
INVALID_IGNORE_LINE = "invalid_ignore_line"  # the skip reason of an ignore-file line git would skip too
_DUBIOUS = re.compile(r"detected dubious ownership in repository at '(.*)'")


@dataclass
class WalkResult:
    files: list[SourceFile]
    # reason -> repository-relative paths; for INVALID_IGNORE_LINE, "path/.gitignore:line" of each line skipped
    skipped: dict[str, list[str]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # one line each, for the user (e.g. git refused the repository)

    def skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(path)

    @property
    def invalid_ignore_lines(self) -> int:
        return len(self.skipped.get(INVALID_IGNORE_LINE, []))

    def note_invalid_lines(self, ignore_path: str, ignore: IgnoreFile | None) -> None:
        for number in ignore.invalid_lines if ignore else []:
            self.skip(INVALID_IGNORE_LINE, f"{ignore_path}:{number}")


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
    """The top of the git work tree containing path, or path itself when it is not in one. A work tree git refuses
    (another user's) is still found: the walk then reads it as a plain directory and says why."""
    path = check_root(path)
    top = git_text(path, "rev-parse", "--show-toplevel")
    if top:
        return Path(top.strip()).resolve()
    refused = git_refusal(path)
    return Path(refused).resolve() if refused and Path(refused).is_dir() else path


def is_git_repository(root: Path) -> bool:
    """Whether git works in root. A repository git refuses to work in (dubious ownership) raises RepositoryError
    with the command that fixes it: "not a git repository" would send the user looking in the wrong place."""
    if git_text(root, "rev-parse", "--is-inside-work-tree") is not None:
        return True
    refused = git_refusal(root)
    if refused:
        raise RepositoryError(_refusal_message(refused))
    return False


def git_refusal(root: Path) -> str | None:
    """The work tree git refuses to work in because another user owns it (safe.directory), else None."""
    try:
        run_git(root, "rev-parse", "--show-toplevel")
    except GitError as exc:
        found = _DUBIOUS.search(exc.stderr)
        return found.group(1) if found else None
    except OSError:  # a git that cannot run refuses nothing
        return None
    return None


def _refusal_message(top: str) -> str:
    return (f"git refuses to work in {top}: another user owns it (dubious ownership); to trust it, run: "
            f"git config --global --add safe.directory {top}")


def walk_repository(root: Path, settings: Settings) -> WalkResult:
    """Files that may be indexed, sorted by path; everything left out is counted by reason."""
    root = check_root(root)
    result = WalkResult(files=[])
    candidates = _git_candidates(root)
    if candidates is None:
        refused = git_refusal(root)
        if refused:
            result.notices.append(_refusal_message(refused) + "; read as a plain directory meanwhile")
        candidates = _plain_candidates(root, result)
    ignore = read_ignore_file(root / IGNORE_FILE)
    result.note_invalid_lines(IGNORE_FILE, ignore)
    for rel in sorted(set(candidates)):
        reason = _file_skip_reason(rel, ignore) or _stat_file(root, rel, settings, result)
        if reason:
            result.skip(reason, _printable(rel) if reason == "bad_name" else rel)
    result.files.sort(key=lambda f: f.path)
    return result


def _file_skip_reason(rel: str, ignore: IgnoreFile | None) -> str | None:
    """Why a path is left out from its name alone, or None."""
    if ignore and ignore.match_file(rel):
        return "ignored"
    if not _valid_utf8(rel):
        return "bad_name"  # the index, SQL filters, JSON and prompts all need text: bytes that are not UTF-8 are not
    return path_skip_reason(rel)


def _valid_utf8(rel: str) -> bool:
    try:
        rel.encode("utf-8")  # names that are not UTF-8 arrive as lone surrogates (surrogateescape)
        return True
    except UnicodeEncodeError:
        return False


def _printable(rel: str) -> str:
    """A name that is not UTF-8, shown with its bad bytes escaped (b'caf\\xe9.py' -> 'caf\\xe9.py')."""
    return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def ignored_folder(root: Path, name: str) -> bool:
    """A top-level folder the walker finds nothing in: ignored by .repochatignore, or by git (.gitignore outside
    a git repository) while holding no tracked file. A watcher need not follow it (node_modules, .venv, build)."""
    folder = f"{name}/"
    ignore = read_ignore_file(root / IGNORE_FILE)
    if ignore and ignore.match_file(folder):
        return True
    if git_text(root, "rev-parse", "--is-inside-work-tree") is None:  # no git, or git refuses: the plain walk's rules
        spec = read_ignore_file(root / ".gitignore")
        return bool(spec and spec.match_file(folder))
    ignored = git_text(root, "check-ignore", "-q", "--", folder) is not None  # exit status 0: ignored
    return ignored and not git_text(root, "ls-files", "--", folder)


def read_text(root: Path, rel: str) -> str | None:
    """A file's text when it may be indexed (not binary, not a secret, not generated), else None."""
    text, _reason = read_checked(root, rel)
    return text


def read_checked(root: Path, rel: str) -> tuple[str | None, str | None]:
    """(text, None) for an indexable file, (None, reason) otherwise. Reads the file once."""
    try:
        data = read_regular(root / rel)
    except FileNotFoundError:
        return None, "deleted"
    except NotRegularFile:
        return None, "not_a_file"  # replaced by a FIFO or a folder since the walk: never block on it
    except OSError:
        return None, "unreadable"
    return indexable_text(data, rel)


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


def _git_candidates(root: Path) -> list[str] | None:
    """Tracked plus untracked-but-not-ignored files, as git sees them; None outside a git work tree."""
    if git_text(root, "rev-parse", "--show-toplevel") is None:
        return None
    listing = git_text(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listing is None:
        return None
    return [p for p in listing.split("\0") if p and not p.startswith(".repochat/")]


def _plain_candidates(root: Path, result: WalkResult) -> list[str]:
    """Every file below root, honouring .gitignore files on the way down (no git needed). Links to folders are
    listed, not followed, so that the walk counts them (outside the root, or not a file)."""
    found: list[str] = []
    specs: dict[str, IgnoreFile] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        spec = read_ignore_file(Path(dirpath) / ".gitignore")
        result.note_invalid_lines(rel_dir + ".gitignore", spec)
        if spec and spec.spec:
            specs[rel_dir] = spec
        active = [(base, s) for base, s in specs.items() if rel_dir.startswith(base)]
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".repochat") and d not in linked
                             and not _ignored(active, rel_dir + d + "/"))
        found.extend(rel_dir + f for f in filenames + linked if not _ignored(active, rel_dir + f))
    return found


def _ignored(active: list[tuple[str, IgnoreFile]], rel: str) -> bool:
    return any(spec.match_file(rel[len(base):]) for base, spec in active)
