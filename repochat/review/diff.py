"""What a review looks at: the files a change touches, their old and new text, and the changed line ranges.

Git names the changed files (``--name-status -M``: renames are one entry, not a deletion plus an addition); the old
and new blobs are read in one ``git cat-file --batch`` call, and the hunks are computed here from the two texts, so
no unified-diff text (quoted paths, binary markers, combined merge diffs) has to be parsed.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ReviewError
from ..index.pieces import split_lines
from ..repo.filters import content_skip_reason, indexable_text, path_skip_reason
from ..repo.git import GitError, run_git
from ..repo.secret_rules import withhold_secret_lines
from ..repo.walk import is_git_repository

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known hash of the empty tree
STAGED, WORKTREE = ":staged", ":worktree"  # targets that are not revision ranges


@dataclass(frozen=True)
class Hunk:
    """One run of changes: new-side lines [new_start, new_start + new_count) replaced old lines."""

    new_start: int  # 1-based; for a pure deletion, the line the removed lines stood before
    new_count: int
    removed: tuple[str, ...]  # the old lines that were taken out (shown as '-' lines)


@dataclass
class FileChange:
    path: str  # new path (old path for a deletion)
    status: str  # A(dded), M(odified), D(eleted), R(enamed), T(ype change), C(opied)
    old_path: str = ""
    new_text: str | None = None  # None: deleted, binary or otherwise not reviewable
    old_text: str | None = None
    hunks: list[Hunk] = field(default_factory=list)
    skip_reason: str = ""  # why the file is not reviewed ("" = reviewed)
    staged_bytes: bytes | None = None  # the new blob as committed (to index the staged content)

    @property
    def changed_lines(self) -> int:
        return sum(h.new_count + len(h.removed) for h in self.hunks)

    def added_lines(self) -> set[int]:
        return {line for h in self.hunks for line in range(h.new_start, h.new_start + h.new_count)}


@dataclass
class Change:
    """A reviewable change: its description (for messages) and its files."""

    target: str  # ":staged", ":worktree" or the range as given
    base: str  # the old side (a commit, or the empty tree)
    files: list[FileChange]
    new_side: str = ""  # the reviewed side: ":" the index, "" the work tree, or a commit


def git_output(root: Path, *args: str, data: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    """run_git, its failure a ReviewError: a review cannot go on without git's answer."""
    try:
        return run_git(root, *args, data=data, env=env)
    except GitError as exc:
        raise ReviewError(str(exc)) from exc


def commit_from_patch(root: Path, patch: str) -> str:
    """A commit object holding HEAD plus a unified diff, made in a scratch index: the work tree, the real index and
    every branch stay as they are (the object is unreferenced, and git's gc removes it). Review it like any commit."""
    if not is_git_repository(root):
        raise ReviewError(f"{root}: not a git work tree (review needs git)")
    head = _rev(root, "HEAD")
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git_output(root, "read-tree", head or "--empty", env=env)
        try:
            git_output(root, "apply", "--cached", "--whitespace=nowarn", "-", data=patch.encode("utf-8"), env=env)
        except ReviewError as exc:
            raise ReviewError(f"the patch does not apply to HEAD: {exc}") from exc
        tree = git_output(root, "write-tree", env=env).decode().strip()
        parents = ["-p", head] if head else []
        commit_env = {**env, "GIT_AUTHOR_NAME": "repochat", "GIT_AUTHOR_EMAIL": "repochat@localhost",
                      "GIT_COMMITTER_NAME": "repochat", "GIT_COMMITTER_EMAIL": "repochat@localhost"}
        commit = git_output(root, "commit-tree", tree, *parents, "-m", "patch under review", env=commit_env)
        return commit.decode().strip()


def _rev(root: Path, name: str) -> str | None:
    try:
        return git_output(root, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}").decode().strip() or None
    except ReviewError:
        return None


def load_change(root: Path, target: str = STAGED) -> Change:
    """The files changed by ``target``: STAGED (index vs HEAD), WORKTREE (work tree vs HEAD), 'A..B', 'A...B' or
    one commit 'C' (C against its first parent)."""
    if not is_git_repository(root):
        raise ReviewError(f"{root}: not a git work tree (review needs git)")
    base, new_side, diff_args = _sides(root, target)
    listing = git_output(root, "diff", *diff_args, "--name-status", "-M", "-z", "--no-ext-diff", "--no-textconv")
    files = _parse_name_status(listing)
    _read_texts(root, files, base, new_side)
    for change in files:
        _compute_hunks(change)
    return Change(target, base, files, new_side)


def side_contents(root: Path, new_side: str) -> dict[str, str | None]:
    """How the repository at ``new_side`` differs from the work tree: path -> its text there (None: the path is not
    there, or is not text). The work tree differs from itself in nothing; the index or a commit differs in the files
    git lists against the work tree, and lacks every untracked file."""
    if not new_side:
        return {}
    listing = git_output(root, "diff", "-z", "--name-status", "--no-renames", "--no-ext-diff", "--no-textconv",
                         *([] if new_side == ":" else [new_side]))
    differing = _parse_name_status(listing)  # "A": in the work tree only; "M", "T", "D": on the side too
    prefix = ":" if new_side == ":" else f"{new_side}:"
    blobs = _cat_blobs(root, [prefix + f.path for f in differing if f.status != "A"])
    texts: dict[str, str | None] = {}
    for file in differing:
        data = blobs.get(prefix + file.path)
        texts[file.path] = indexable_text(data, file.path)[0] if data is not None else None
    untracked = git_output(root, "ls-files", "-z", "--others", "--exclude-standard")
    for path in untracked.decode("utf-8", "surrogateescape").split("\0"):
        if path:
            texts.setdefault(path, None)
    return texts


def _sides(root: Path, target: str) -> tuple[str, str, list[str]]:
    """(old tree-ish, new side, git diff arguments). The new side is a commit, ':' (the index) or '' (work tree)."""
    head = _rev(root, "HEAD") or EMPTY_TREE
    if target == STAGED:
        return head, ":", ["--cached", head]
    if target == WORKTREE:
        return head, "", [head]
    if "..." in target:
        left, right = (_need_rev(root, part or "HEAD") for part in target.split("...", 1))
        base = git_output(root, "merge-base", left, right).decode().strip()
        return base, right, [base, right]
    if ".." in target:
        left, right = (_need_rev(root, part or "HEAD") for part in target.split("..", 1))
        return left, right, [left, right]
    commit = _need_rev(root, target)
    parent = _rev(root, f"{commit}^1") or EMPTY_TREE  # a merge is reviewed against its first parent
    return parent, commit, [parent, commit]


def _need_rev(root: Path, name: str) -> str:
    if name.startswith("-"):  # it would reach git's command line as an option
        raise ReviewError(f"not a revision: {name!r}")
    commit = _rev(root, name)
    if commit is None:
        raise ReviewError(f"unknown revision {name!r}")
    return commit


def _parse_name_status(listing: bytes) -> list[FileChange]:
    fields = listing.decode("utf-8", "surrogateescape").split("\0")
    files: list[FileChange] = []
    index = 0
    while index < len(fields) and fields[index]:
        status = fields[index][0]
        if status in "RC":
            old, new = fields[index + 1], fields[index + 2]
            files.append(FileChange(new, status, old_path=old))
            index += 3
        else:
            path = fields[index + 1]
            files.append(FileChange(path, status, old_path=path))
            index += 2
    return files


def _read_texts(root: Path, files: list[FileChange], base: str, new_side: str) -> None:
    old_specs = [f"{base}:{f.old_path}" if f.status not in "A" else None for f in files]
    new_specs = [None if f.status == "D" else (f":{f.path}" if new_side == ":" else f"{new_side}:{f.path}")
                 if new_side else None for f in files]
    blobs = _cat_blobs(root, [s for s in old_specs + new_specs if s])
    for change, old_spec, new_spec in zip(files, old_specs, new_specs):
        old = blobs.get(old_spec) if old_spec else None
        new = blobs.get(new_spec) if new_spec else None
        if not new_side and change.status != "D":
            new = _read_worktree(root, change.path)
        change.staged_bytes = new
        change.old_text = _old_side_text(change, old)
        change.skip_reason = _skip_reason(change, new)
        change.new_text = None if change.skip_reason else _as_text(new or b"")


def _old_side_text(change: FileChange, old: bytes | None) -> str | None:
    """The old side as the review may show it (its removed lines): a line that holds a secret is withheld, and
    every line of a file at a secret path. A commit that takes a leaked key out must not send the key to the model."""
    text = _as_text(old) if old is not None else None
    if not text:
        return text
    lines = withhold_secret_lines(split_lines(text), change.old_path,
                                  whole=path_skip_reason(change.old_path) == "secret")
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _skip_reason(change: FileChange, new: bytes | None) -> str:
    if change.status == "D":
        return "deleted"
    if new is None:
        return "unreadable"
    if change.old_path != change.path and "secret" in (path_skip_reason(change.old_path),
                                                       content_skip_reason(new, change.old_path)):
        return "secret"  # renamed away from a secret path, or from a configuration file that held a password
    reason = path_skip_reason(change.path) or content_skip_reason(new, change.path)
    if reason in ("binary", "secret", "generated", "minified"):
        return reason
    return "" if _as_text(new) is not None else "not text"


def _as_text(data: bytes) -> str | None:
    """Text for review, None for binary content. A file in a legacy 8-bit encoding is read as latin-1: every byte
    still maps to one character, so its line numbers hold."""
    if b"\0" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n")


def _read_worktree(root: Path, rel: str) -> bytes | None:
    try:
        return (root / rel).read_bytes()
    except OSError:
        return None


def _cat_blobs(root: Path, specs: list[str]) -> dict[str, bytes]:
    """Read many blobs ('rev:path' or ':path') with one git process."""
    if not specs:
        return {}
    request = "".join(f"{spec}\n" for spec in specs).encode("utf-8", "surrogateescape")
    output = git_output(root, "cat-file", "--batch", data=request)
    blobs: dict[str, bytes] = {}
    position = 0
    for spec in specs:
        header_end = output.index(b"\n", position)
        header = output[position:header_end].split()
        position = header_end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            blobs[spec] = output[position:position + size]
            position += size + 1  # the blob is followed by a newline
    return blobs


def _compute_hunks(change: FileChange) -> None:
    if change.new_text is None:
        return
    old_lines = split_lines(change.old_text or "")
    new_lines = split_lines(change.new_text)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, old_a, old_b, new_a, new_b in matcher.get_opcodes():
        if tag != "equal":
            change.hunks.append(Hunk(new_a + 1, new_b - new_a, tuple(old_lines[old_a:old_b])))
