"""The review's view of a change, without the model: the index updated from staged blobs (not the work tree), the
changed regions widened to their definitions, callers and callees from the symbol index, the misspelling note, the
prompt, and file selection (review_skip, max_diff_lines, not reviewed files listed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import pytest

from repo_support import git, write_files
from review_cases import CASES, CLEAN_EDITS
from repochat.config import Settings
from repochat.errors import IndexMissing
from repochat.index.indexer import update_index
from repochat.retrieve.symbols import find_symbols
from repochat.review.run import PROMPT_TOKENS, build_context, review, select_files
from repochat.review.diff import load_change
from repochat.review.staged_index import index_change, open_index
from repochat.review.prompt import prompt_text

SETTINGS = Settings(embeddings=False)


def indexed_case(make_repo: Callable[..., Path], number: int) -> Path:
    case = CASES[number]
    root = make_repo(case.files)
    update_index(root, SETTINGS)
    write_files(root, case.edit)
    git(root, "add", *case.edit)
    return root


def prepared(root: Path, settings: Settings = SETTINGS):  # type: ignore[no-untyped-def]
    change = load_change(root)
    store = open_index(root, settings, for_writing=True)
    index_change(store, change, settings)
    return store, select_files(store, change, settings)


def test_index_takes_the_staged_blob_not_the_worktree_file(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"mod.py": "def alpha():\n    return 1\n"})
    update_index(root, SETTINGS)
    write_files(root, {"mod.py": "def alpha():\n    return 1\n\n\ndef staged_only():\n    return 2\n"})
    git(root, "add", "mod.py")
    write_files(root, {"mod.py": "def worktree_only():\n    return 3\n"})  # not staged
    prepared(root)
    reader = open_index(root, SETTINGS)
    assert find_symbols(reader, "staged_only", role="definition")
    assert not find_symbols(reader, "worktree_only")
    update_index(root, SETTINGS)  # the next full update sees the work-tree file again
    assert find_symbols(open_index(root, SETTINGS), "worktree_only", role="definition")


def test_removed_check_shows_the_whole_function_and_its_caller(make_repo: Callable[..., Path]) -> None:
    root = indexed_case(make_repo, 2)  # display_name loses its None check; greeter.greet relies on it
    store, selection = prepared(root)
    context = build_context(store, selection)
    view = context.files[0]
    assert view.touched == ["display_name"]
    assert "     -|     if user is None:" in view.text and "  17 | def display_name(user):" in view.text
    assert context.locations() == {"users.py": [18]}  # the line the check was taken from
    callers = [(e.path, e.title) for e in context.callers]
    assert callers == [("greeter.py", "caller of display_name")]  # the import line is not a use
    assert "display_name(user)" in context.callers[0].text
    text = prompt_text(context, PROMPT_TOKENS)
    assert text.index("greeter.py") < text.index("=== users.py (modified) ===")  # the change comes last


def test_misspelled_attribute_gets_a_note(make_repo: Callable[..., Path]) -> None:
    root = indexed_case(make_repo, 1)  # self.balance -> self.balanse
    store, selection = prepared(root)
    notes = build_context(store, selection).notes
    assert notes == ["account.py:13: `balanse` is used only here (not defined or used anywhere else); similar "
                     "existing name: `balance`"]


def test_no_misspelling_note_for_words_inside_strings(make_repo: Callable[..., Path]) -> None:
    _name, files, edit = next(c for c in CLEAN_EDITS if c[0] == "withdraw message")  # a new word in a message
    root = make_repo(files)
    update_index(root, SETTINGS)
    write_files(root, edit)
    git(root, "add", *edit)
    store, selection = prepared(root)
    assert build_context(store, selection).notes == []


def test_callees_come_from_other_files(make_repo: Callable[..., Path]) -> None:
    root = indexed_case(make_repo, 0)  # last_page calls paginate, defined in the same file: not a callee excerpt
    store, selection = prepared(root)
    assert build_context(store, selection).callees == []
    root = make_repo({"lib.py": "def helper(x):\n    return x * 2\n", "use.py": "from lib import helper\n\n\n"
                      "def run(v):\n    return v\n"})
    update_index(root, SETTINGS)
    write_files(root, {"use.py": "from lib import helper\n\n\ndef run(v):\n    return helper(v)\n"})
    git(root, "add", "use.py")
    store, selection = prepared(root)
    callees = build_context(store, selection).callees
    assert [(e.path, e.title) for e in callees] == [("lib.py", "definition of helper")]


def test_skip_patterns_and_diff_size_limit_list_files_not_reviewed(make_repo: Callable[..., Path]) -> None:
    files = {f"pkg/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(4)}
    root = make_repo({**files, "docs/guide.md": "# Guide\n"})
    update_index(root, SETTINGS)
    write_files(root, {path: text + "\n\ndef g():\n    return 0\n" for path, text in files.items()})
    write_files(root, {"docs/guide.md": "# Guide\n\nMore.\n"})
    git(root, "add", "-A", "pkg", "docs")
    settings = dataclasses.replace(SETTINGS, review_skip=("docs/",), max_diff_lines=9)
    _store, selection = prepared(root, settings)
    assert selection.not_reviewed["docs/guide.md"] == "skipped by review_skip"
    assert len(selection.views) == 2  # 4 added lines each: two files fit in 9 lines
    left_out = [p for p, reason in selection.not_reviewed.items() if reason.startswith("diff too large")]
    assert len(left_out) == 2 and not set(left_out) & {v.path for v in selection.views}


def test_without_an_index_the_review_builds_one_first(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"a.py": "x = 1\n", "b.py": "from a import x\n"})
    write_files(root, {"a.py": "x = 2\n"})
    git(root, "add", "a.py")
    with pytest.raises(IndexMissing):
        open_index(root, SETTINGS)
    report = review(root, dataclasses.replace(SETTINGS, model=str(root / "no-such-model.gguf")))
    assert report.notes == [report.notes[0]] and report.notes[0].startswith("no index yet: built one (2 files")
    assert report.reviewed == ["a.py"] and report.notice.startswith("model unavailable")
    assert set(open_index(root, SETTINGS).file_rows()) == {"a.py", "b.py"}
