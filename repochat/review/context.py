"""What the model sees in a review, within a token budget, most important first.

1. The changed regions of each file: hunks with surrounding lines, widened to the whole definition they fall in
   (so the model sees the full function it judges), with new-file line numbers, '+' on added lines and the removed
   lines shown as '-'.
2. Callers of the touched definitions (the code that relies on them), from the symbol index.
3. Definitions the changed code calls (callees), from the symbol index.
4. Notes from the index: a name used in the added lines that appears nowhere else, next to a similar known name.
5. A map of the files most related to the change (repo map focused on the changed files).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..index.definitions import Definition, extract_definitions
from ..index.languages import language_for, ts_parser
from ..index.pieces import split_lines
from ..index.parse import parse_file
from ..index.schema import sql_quote
from ..index.store import IndexStore
from ..repo.secret_rules import withhold_secret_lines
from ..retrieve.repomap import rank_definitions, render_map
from ..retrieve.symbols import find_symbols
from .diff import FileChange
from ..tokens import count_tokens

CONTEXT_LINES = 3  # unchanged lines shown around each hunk
MAX_DEFINITION_LINES = 80  # a longer enclosing definition is shown as its hunks only
MAX_EXCERPT_LINES = 24  # a caller or callee is shown in at most this many lines around the point of interest
MAX_CALLERS_PER_NAME = 3
MAP_TOKENS = 200
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Quoted text on one line, in the quotes nearly every language uses: words in a message are not names.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


@dataclass
class FileView:
    """One changed file as shown to the model."""

    path: str
    status: str
    text: str
    shown_lines: list[int]  # new-file line numbers shown
    citable_lines: list[int]  # where a finding may point: added lines, and the line after removed ones
    touched: list[str]  # bare names of the definitions the change falls in
    changed_lines: int


@dataclass
class Excerpt:
    title: str
    path: str
    start_line: int
    text: str  # numbered lines


@dataclass
class ReviewContext:
    files: list[FileView] = field(default_factory=list)
    callers: list[Excerpt] = field(default_factory=list)
    callees: list[Excerpt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    related: str = ""
    not_reviewed: dict[str, str] = field(default_factory=dict)  # path -> reason

    def locations(self) -> dict[str, list[int]]:
        """Where findings may point. A pre-commit review judges the change, so a finding is anchored on a changed
        line (as review tools anchor comments on diff lines); the model cannot pick a neighbouring unchanged one."""
        return {view.path: view.citable_lines for view in self.files}


# --- the changed files ------------------------------------------------------------------------------------------
def flat_definitions(path: str, text: str) -> list[Definition]:
    """Every definition of the file (nested ones included), from the language's chunks.scm; [] without a grammar."""
    spec = language_for(path)
    if spec is None:
        return []
    source = text.encode("utf-8", "replace")
    try:
        roots = extract_definitions(spec, ts_parser(spec).parse(source), source, split_lines(text))
    except (ValueError, RuntimeError, UnicodeError):
        return []
    found: list[Definition] = []
    stack = list(roots)
    while stack:
        definition = stack.pop()
        found.append(definition)
        stack.extend(definition.children)
    return found


def _innermost(definitions: list[Definition], line: int) -> Definition | None:
    """The smallest definition containing 1-based ``line``."""
    containing = [d for d in definitions if d.start_row < line <= d.end_row + 1]
    return min(containing, key=lambda d: d.end_row - d.start_row, default=None)


def _change_points(change: FileChange) -> list[int]:
    """New-file lines that were added, and for a pure deletion the line after it (where the code was taken out)."""
    last = max(len(split_lines(change.new_text or "")), 1)
    points = sorted(change.added_lines())
    points += [min(h.new_start, last) for h in change.hunks if h.new_count == 0]  # removed at the end: last line
    return sorted(set(points))


def file_view(change: FileChange, max_shown: int | None = None) -> FileView:
    """The file's changed regions; ``max_shown`` caps the lines (the first ones are kept) for an oversized change."""
    text = change.new_text or ""
    lines = split_lines(text)
    definitions = flat_definitions(change.path, text)
    shown: set[int] = set()
    touched: list[str] = []
    for point in _change_points(change):
        shown.update(range(max(1, point - CONTEXT_LINES), min(len(lines), point + CONTEXT_LINES) + 1))
        definition = _innermost(definitions, point)
        if definition is not None and definition.name not in touched:
            touched.append(definition.name)
            if definition.end_row - definition.start_row < MAX_DEFINITION_LINES:
                shown.update(range(definition.start_row + 1, definition.end_row + 2))
    shown_lines = sorted(line for line in shown if 1 <= line <= len(lines))[:max_shown]
    rendered = _render_changed(change, lines, shown_lines)
    citable = [line for line in _change_points(change) if line in set(shown_lines)]
    return FileView(change.path, change.status, rendered, shown_lines, citable, touched, change.changed_lines)


def _render_changed(change: FileChange, lines: list[str], shown: list[int]) -> str:
    """Numbered new-file lines, '+' on added ones, removed old lines as '-' where they were, '...' across gaps."""
    added = change.added_lines()
    removed_before = {h.new_start: h.removed for h in change.hunks if h.removed}
    label = {"A": "new file", "R": f"renamed from {change.old_path}", "M": "modified"}.get(change.status, "changed")
    out = [f"=== {change.path} ({label}) ==="]
    previous = 0
    for line in shown:
        if previous and line != previous + 1:
            out.append("     ...")
        out.extend(f"     -| {old}" for old in removed_before.get(line, ()))
        out.append(f"{line:4d}{'+' if line in added else ' '}| {lines[line - 1]}")
        previous = line
    end = len(lines) + 1  # lines removed at the very end of the file
    out.extend(f"     -| {old}" for old in removed_before.get(end, ()))
    return "\n".join(out) + "\n"


# --- callers and callees from the index ------------------------------------------------------------------------
def _covering_chunk(store: IndexStore, path: str, line: int) -> dict[str, Any] | None:
    rows = store.table("chunks").search().where(
        f"path = {sql_quote(path)} AND start_line <= {line} AND end_line >= {line}").limit(20).to_list()
    return min(rows, key=lambda r: r["end_line"] - r["start_line"], default=None)


def _excerpt(title: str, chunk: dict[str, Any], focus: int) -> Excerpt:
    """The chunk's lines around ``focus`` (its head when it is short enough), numbered."""
    lines = withhold_secret_lines(chunk["text"].split("\n"), chunk["path"])  # an index built by older rules
    start = chunk["start_line"]
    if len(lines) > MAX_EXCERPT_LINES:
        first = max(0, min(focus - start - MAX_EXCERPT_LINES // 2, len(lines) - MAX_EXCERPT_LINES))
        lines, start = lines[first:first + MAX_EXCERPT_LINES], start + first
    numbered = "\n".join(f"{start + i:4d} | {text}" for i, text in enumerate(lines))
    return Excerpt(title, chunk["path"], start, numbered)


def find_callers(store: IndexStore, views: list[FileView]) -> list[Excerpt]:
    """Code elsewhere that calls a touched definition: one excerpt per calling definition."""
    shown = {(v.path, line) for v in views for line in v.shown_lines}
    found: list[Excerpt] = []
    seen: set[tuple[str, int]] = set()
    for view in views:
        for name in view.touched:
            hits = [h for h in find_symbols(store, name, role="reference")
                    if (h.path, h.line) not in shown and h.kind != "import"]  # an import shows no use
            hits.sort(key=lambda h: h.path == view.path)  # other files first: the cross-file context is the point
            for hit in hits[:MAX_CALLERS_PER_NAME]:
                chunk = _covering_chunk(store, hit.path, hit.line)
                if chunk and (chunk["path"], chunk["start_line"]) not in seen:
                    seen.add((chunk["path"], chunk["start_line"]))
                    found.append(_excerpt(f"caller of {name}", chunk, hit.line))
    return found


def find_callees(store: IndexStore, changes: list[FileChange], views: list[FileView]) -> list[Excerpt]:
    """Definitions (in other files) of the names the shown changed code calls."""
    found: list[Excerpt] = []
    seen: set[tuple[str, int]] = set()
    changed_paths = {v.path for v in views}
    for change, view in zip(changes, views):
        visible = set(view.shown_lines)
        symbols = parse_file(change.path, change.new_text or "").symbols
        names = list(dict.fromkeys(s.name for s in symbols if s.role == "reference" and s.line in visible))
        for name in names:
            for hit in find_symbols(store, name, role="definition", limit=2):
                if hit.path in changed_paths or (hit.path, hit.line) in seen:
                    continue
                seen.add((hit.path, hit.line))
                chunk = _covering_chunk(store, hit.path, hit.line)
                if chunk:
                    found.append(_excerpt(f"definition of {name}", chunk, hit.line))
    return found


# --- notes ------------------------------------------------------------------------------------------------------
def misspelling_notes(store: IndexStore, change: FileChange, context_text: str) -> list[str]:
    """Names used once, in an added line, and nowhere else in the file, the shown context or the index, that look
    like a known name: the usual shape of a typo ('self.totl' where the class uses 'self.total')."""
    lines = split_lines(change.new_text or "")
    in_file = Counter(_IDENTIFIER.findall(change.new_text or ""))
    in_context = Counter(_IDENTIFIER.findall(context_text))
    known = sorted(set(in_file) | set(in_context))
    notes: list[str] = []
    for line in sorted(change.added_lines()):
        for name in _IDENTIFIER.findall(_QUOTED.sub("", lines[line - 1])):
            if in_file[name] != 1 or in_context[name] or len(name) < 4:
                continue
            similar = difflib.get_close_matches(name, [k for k in known if k != name], n=1, cutoff=0.8)
            if similar and not find_symbols(store, name, limit=1):
                notes.append(f"{change.path}:{line}: `{name}` is used only here (not defined or used anywhere "
                             f"else); similar existing name: `{similar[0]}`")
    return notes


def related_map(store: IndexStore, paths: list[str]) -> str:
    """The best-ranked definitions of files near the change in the reference graph (changed files left out)."""
    entries = [e for e in rank_definitions(store, focus_paths=set(paths)) if e.path not in paths]
    text, _used = render_map(entries, MAP_TOKENS)
    return text


def tokens_of(text: str) -> int:
    return count_tokens(text)
