"""Stability order from real git history, and rendering/citation checks (pure logic on real text)."""

from __future__ import annotations

import os
from pathlib import Path

from engine_support import git, make_repo
from repochat.repo.history import changed_paths, stability_order
from repochat.answer.render import ShownLines, check_citations, parse_citations, render_block


def test_order_follows_last_commit_oldest_first(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "a\n", "b.py": "b\n", "c.py": "c\n"})
    (root / "a.py").write_text("a changed\n")
    git(root, "commit", "-q", "-am", "touch a", when=1_800_000_000)
    assert stability_order(root, ["a.py", "b.py", "c.py"]) == ["b.py", "c.py", "a.py"]


def test_dirty_staged_and_untracked_files_come_last(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "a\n", "b.py": "b\n", "c.py": "c\n", "d.py": "d\n"})
    (root / "a.py").write_text("edited, not staged\n")
    (root / "b.py").write_text("edited and staged\n")
    git(root, "add", "b.py")
    (root / "new.py").write_text("untracked\n")
    now = 1_900_000_000
    for offset, name in enumerate(["new.py", "b.py", "a.py"]):  # modification order decides within the tail
        os.utime(root / name, (now + offset, now + offset))
    assert changed_paths(root) == {"a.py", "b.py", "new.py"}
    order = stability_order(root, ["a.py", "b.py", "c.py", "d.py", "new.py"])
    assert order == ["c.py", "d.py", "new.py", "b.py", "a.py"]


def test_rev_gives_the_order_at_an_older_commit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "a\n", "b.py": "b\n"})
    first = git(root, "rev-parse", "HEAD").strip()
    (root / "a.py").write_text("a2\n")
    git(root, "commit", "-q", "-am", "a again", when=1_800_000_000)
    assert stability_order(root, ["a.py", "b.py"]) == ["b.py", "a.py"]
    assert stability_order(root, ["a.py", "b.py"], rev=first, include_worktree=False) == ["a.py", "b.py"]


def test_outside_git_orders_by_modification_time(tmp_path: Path) -> None:
    for offset, name in enumerate(["z.txt", "m.txt", "a.txt"]):
        (tmp_path / name).write_text(name)
        os.utime(tmp_path / name, (1_000_000 + offset, 1_000_000 + offset))
    assert stability_order(tmp_path, ["a.txt", "m.txt", "z.txt"]) == ["z.txt", "m.txt", "a.txt"]


def test_rendered_block_numbers_every_line() -> None:
    block = render_block("src/app.py", "import os\n\nprint(os.name)\n", start_line=10)
    assert block.splitlines() == ["=== src/app.py (lines 10-12) ===", "10|import os", "11|", "12|print(os.name)", ""]


def test_citations_are_parsed_and_checked_against_shown_lines() -> None:
    shown = ShownLines()
    shown.add("src/app.py", 1, 40)
    shown.add("lib/util.py", 10, 20)
    shown.add("lib/util.py", 21, 30)
    answer = ("See src/app.py:12-30 and `lib/util.py:15-25`; also lib/util.py:5-12, src/app.py:41, "
              "missing.py:1-2, and ./src/app.py:3. The meeting is at 12:30.")
    found = {(c["path"], c["start"], c["end"]): c["valid"] for c in check_citations(answer, shown)}
    assert found == {
        ("src/app.py", 12, 30): True,
        ("lib/util.py", 15, 25): True,  # spans two adjacent excerpts
        ("lib/util.py", 5, 12): False,  # starts before the excerpt
        ("src/app.py", 41, 41): False,  # past the end of what was shown
        ("missing.py", 1, 2): False,
        ("src/app.py", 3, 3): True,
    }


def test_reversed_and_duplicate_citations_are_normalised() -> None:
    assert parse_citations("a.py:9-3 and a.py:3-9") == [("a.py", 3, 9)]
