"""The indexed copy of a source: every case's doc comment blanked, so a query is never found verbatim.

Blanked lines become empty lines (line endings kept), so every line number in the cases still points at the same
code. Copies and their indexes are cached under a key of the source, the strip set and the indexing code, so a
re-run with nothing changed reuses them and a change to the chunker or schema gets a fresh index.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Iterable

import repochat
from repochat.index.schema import SCHEMA_VERSION
from .cases import Case, EvalError

StripSet = dict[str, list[tuple[int, int]]]  # path -> line ranges (1-based, inclusive) to blank
_INDEX_CODE = ("index", "repo")  # repochat subpackages whose code decides what an index holds
COMPLETE = ".complete"


def strip_set(cases: Iterable[Case]) -> StripSet:
    ranges: StripSet = {}
    for case in cases:
        if case.strip_lines:
            ranges.setdefault(case.path, []).append(case.strip_lines)
    return {path: sorted(set(spans)) for path, spans in sorted(ranges.items())}


def blank_lines(text: str, spans: list[tuple[int, int]]) -> str:
    """text with the lines in spans emptied; each keeps its own line ending, so numbering is unchanged."""
    lines = text.splitlines(keepends=True)
    for first, last in spans:
        for number in range(first, min(last, len(lines)) + 1):
            line = lines[number - 1]
            lines[number - 1] = line[len(line.rstrip("\r\n")):]
    return "".join(lines)


def copy_key(source_key: str, strips: StripSet, embedding_model: str, index_code: str = "") -> str:
    """Folder key: the source, the strip set, the index schema and embedder, and the indexing code itself (as it is
    now, or as it was at git revision ``index_code``)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([source_key, strips, SCHEMA_VERSION, embedding_model], sort_keys=True).encode())
    digest.update(index_code_fingerprint(index_code).encode())
    return digest.hexdigest()[:16]


def index_code_fingerprint(revision: str = "") -> str:
    """A hash of repochat's indexing code and grammars: a chunker change without a schema bump still re-indexes.
    Any edit counts, a rename too; so with ``revision`` it is the hash of that git revision's code, and a run can
    reuse the indexes built then (worth hours on the SWE-bench sources) once it is checked that indexing has not
    changed since (for example, equal chunks tables for one source indexed at both revisions)."""
    digest = hashlib.sha256()
    files = _code_at(revision) + _grammars_at(revision) if revision else _code_installed() + _grammar_files()
    for name, data in files:
        digest.update(name.encode() + data)
    return digest.hexdigest()


def _code_installed() -> list[tuple[str, bytes]]:
    package = Path(repochat.__file__).resolve().parent
    return [(path.name, path.read_bytes()) for sub in _INDEX_CODE for path in sorted((package / sub).glob("*.py"))]


def _code_at(revision: str) -> list[tuple[str, bytes]]:
    """As _code_installed, from ``revision`` (a folder it does not have holds nothing)."""
    return [(path.rsplit("/", 1)[1], _git_show(revision, path)) for sub in _INDEX_CODE
            for path in sorted(p for p in _git_lines("ls-tree", "--name-only", revision, f"repochat/{sub}/")
                               if p.endswith(".py"))]


def _grammars_at(revision: str) -> list[tuple[str, bytes]]:
    """The grammar files of ``revision`` as _grammar_files names them: language/file, one level deep."""
    paths = [p for p in _git_lines("ls-tree", "-r", "--name-only", revision, "grammars/") if p.count("/") == 2]
    return [(path.split("/", 1)[1], _git_show(revision, path)) for path in sorted(paths)]


def _git_lines(*args: str) -> list[str]:
    return _git(*args).decode().split()


def _git_show(revision: str, path: str) -> bytes:
    return _git("show", f"{revision}:{path}")


def _git(*args: str) -> bytes:
    """git in repochat's own checkout (the indexing code's history)."""
    checkout = Path(repochat.__file__).resolve().parent.parent
    done = subprocess.run(["git", *args], cwd=checkout, capture_output=True)
    if done.returncode != 0:
        raise EvalError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout


def _grammar_files() -> list[tuple[str, bytes]]:
    try:
        root = files("repochat.grammars")
    except ModuleNotFoundError:
        return []
    found = []
    for folder in sorted(root.iterdir(), key=lambda t: t.name):
        if folder.is_dir():
            found += [(f"{folder.name}/{f.name}", f.read_bytes())
                      for f in sorted(folder.iterdir(), key=lambda t: t.name) if f.is_file()]
    return found


def make_stripped_copy(root: Path, strips: StripSet, target: Path, fresh: bool = False) -> Path:
    """target/tree: a plain copy of root with strips applied; reused when already complete."""
    tree = target / "tree"
    if not fresh and (target / COMPLETE).is_file():
        return tree
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", ".repochat"))
    for rel, spans in strips.items():
        path = tree / rel
        if not path.is_file():
            raise EvalError(f"case file {rel} is not in the source {root}")
        data = path.read_bytes().decode("utf-8", errors="surrogateescape")
        path.write_bytes(blank_lines(data, spans).encode("utf-8", errors="surrogateescape"))
    (target / COMPLETE).write_text("ok", encoding="utf-8")
    return tree
