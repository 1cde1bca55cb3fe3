"""What the MCP server's tools do, as plain synchronous functions over one repository (no protocol in here).

Every path that comes from a client goes through ``confine`` first: a path is relative to the repository root and
must stay inside it, also after following symlinks.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable

from ..callbacks import Progress
from ..config import Settings
from ..engine.lazy import LazyEngine
from ..errors import ConfigError, RepositoryError
from ..index.store import IndexStore
from ..repo.walk import read_checked, walk_repository
from .watch import IndexGate, IndexWatcher

if TYPE_CHECKING:
    from ..engine.session import Engine
    from .kv_refresh import KvRefresher

_DRIVE = re.compile(r"^[A-Za-z]:")


def confine(root: Path, path: str) -> str:
    """``path`` as a repository-relative POSIX path, or a RepositoryError when it would reach outside ``root``."""
    clean = _relative_parts(path, "path")
    full = (root / clean).resolve()
    if not full.is_relative_to(root):
        raise RepositoryError(f"path {path!r} leads outside the repository (through a symlink); refused")
    return clean


def confine_glob(pattern: str) -> str:
    """A path glob with the same rules: relative, no '..' (a glob is matched against indexed paths only)."""
    return _relative_parts(pattern, "path glob")


def _relative_parts(path: str, what: str) -> str:
    if not path or not path.strip():
        raise ConfigError(f"empty {what}")
    if "\0" in path:
        raise RepositoryError(f"{what} {path!r} contains a NUL byte; refused")
    posix = path.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix) or posix.startswith("~"):
        raise RepositoryError(f"{what} {path!r} is absolute; give a path relative to the repository root")
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        raise RepositoryError(f"{what} {path!r} contains '..'; paths must stay inside the repository")
    return PurePosixPath(*parts).as_posix() if parts else "."


class ServerTools:
    """The operations behind the MCP tools, for one repository root. Keeps the model loaded between asks."""

    def __init__(self, root: Path, settings: Settings, gate: IndexGate, watcher: IndexWatcher | None = None,
                 refresher: KvRefresher | None = None) -> None:
        self.root = root.resolve()
        self.settings = settings
        self.gate = gate
        self.watcher = watcher
        self.refresher = refresher
        self._engine = LazyEngine(settings)

    def _store(self) -> IndexStore:
        # A fresh handle per request: an open LanceDB table keeps reading the version it was opened at.
        return IndexStore.open(self.settings.index_path(self.root))

    # --- index queries -------------------------------------------------------------------------------------
    def search_code(self, query: str, k: int = 10, mode: str = "hybrid", path: str | None = None,
                    language: str | None = None) -> dict[str, Any]:
        from ..retrieve.search import MAX_QUERY_CHARS, cut_notice, search

        glob = confine_glob(path) if path else None
        hits = search(self._store(), query, k=k, mode=mode, path_glob=glob, language=language,
                      embedding_model=self.settings.embedding_model)
        found = {"query": query[:MAX_QUERY_CHARS], "mode": mode,
                 "results": [{**asdict(h), "location": h.location()} for h in hits]}
        notice = cut_notice(query)
        return {**found, "notice": notice} if notice else found

    def find_symbol(self, name: str) -> dict[str, Any]:
        from ..retrieve.symbols import find_symbols

        hits = find_symbols(self._store(), _name(name), role="definition")
        return {"name": name, "definitions": [{**asdict(h), "location": h.location()} for h in hits]}

    def find_references(self, name: str) -> dict[str, Any]:
        from ..retrieve.symbols import find_symbols

        hits = find_symbols(self._store(), _name(name), role="reference", limit=1000)
        return {"name": name, "references": [{**asdict(h), "location": h.location()} for h in hits]}

    def repo_map(self, tokens: int = 1024, focus: list[str] | None = None) -> dict[str, Any]:
        from ..retrieve.repomap import rank_definitions, render_map

        focus_paths = {confine(self.root, p) for p in focus or []}
        text, used = render_map(rank_definitions(self._store(), focus_paths=focus_paths), tokens)
        return {"tokens": used, "budget": tokens, "map": text}

    def index_status(self) -> dict[str, Any]:
        from ..answer.status import repository_status

        report = repository_status(self.root, self.settings)
        if self.watcher is not None:
            state = self.watcher.state
            report["live"] = {"updates": state.updates, "embedded": state.embedded,
                              "last_error": state.last_error or None,
                              "last_update_s": round(state.last_update.seconds, 3) if state.last_update else None}
        report["kv_refresh"] = self.refresher.status() if self.refresher is not None else {"state": "off"}
        return report

    # --- files ---------------------------------------------------------------------------------------------
    def list_files(self) -> list[str]:
        return [f.path for f in walk_repository(self.root, self.settings).files]

    def read_file(self, path: str) -> str:
        """A file's text, when the walker would index it: ignored files, secrets and binaries are refused."""
        rel = confine(self.root, path)
        if rel not in set(self.list_files()):
            raise RepositoryError(f"{rel}: not a readable file of the repository (missing, ignored, too large or "
                                  "a secret)")
        text, reason = read_checked(self.root, rel)
        if text is None:
            raise RepositoryError(f"{rel}: not readable as text ({reason})")
        return text

    # --- the model -----------------------------------------------------------------------------------------
    def engine(self, progress: Progress | None = None) -> Engine | None:
        """The engine, loaded on first use and kept: its model and the KV pages in memory serve later asks. None
        with a remote engine (settings.engine): ask and review talk to the server, no local model is loaded."""
        return None if self.settings.engine else self._engine.get(progress)

    def loaded_engine(self) -> Engine | None:
        """The engine if a request has loaded it, without loading it."""
        return self._engine.loaded()

    def ask(self, question: str, effort: str = "auto", progress: Progress | None = None,
            check_cancel: Callable[[], None] | None = None) -> dict[str, Any]:
        from ..answer.ask import ask

        def on_text(_piece: str) -> None:
            if check_cancel:
                check_cancel()  # between tokens: a cancelled ask stops generating at once

        result = ask(self.root, question, self.settings, effort=effort, on_text=on_text, on_progress=progress,
                     engine=self.engine(progress))
        return result.as_dict()

    def review_diff(self, target: str = "staged", progress: Progress | None = None) -> dict[str, Any]:
        """Review 'staged', 'worktree', a revision range ('A..B', 'A...B', one commit) or a pasted unified diff
        (applied to HEAD in a scratch index) on the loaded engine."""
        from ..review.run import review
        from ..review.diff import STAGED, WORKTREE, commit_from_patch

        if _is_patch(target):
            resolved = commit_from_patch(self.root, target)
        else:
            resolved = {"staged": STAGED, "worktree": WORKTREE}.get(target.strip()) or _revision_range(target)
        engine = self.engine(progress)
        # A staged review writes the staged blobs' symbols into the index under the index lock, for the few
        # milliseconds that takes, and publishes a snapshot; queries meanwhile read the one before. Holding the
        # gate here would block every query for the whole model run.
        report = review(self.root, self.settings, resolved, engine=engine, on_progress=progress)
        return report.as_dict()

    def close(self) -> None:
        self._engine.close()


def _is_patch(target: str) -> bool:
    return target.lstrip().startswith(("diff --git ", "--- ")) and "\n" in target.strip()


def _revision_range(target: str) -> str:
    """A revision range from a client: no option-like or multi-line values (they would reach git's command line)."""
    target = target.strip()
    # One character class, which ranges' dots belong to: a pattern with a separate '..' part backtracks
    # quadratically over a long run of dots.
    if not target or target.startswith("-") or not re.fullmatch(r"[\w./@^~:{}-]+", target):
        raise ConfigError(f"not a revision range: {target!r} (use 'staged', 'worktree', 'A..B', 'A...B' or a commit)")
    return target


def _name(name: str) -> str:
    if not name.strip():
        raise ConfigError("empty symbol name")
    return name.strip()
