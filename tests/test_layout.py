"""The remembered whole-repository layout (repochat.answer.prefix_layout): pure logic over rendered files, plus its file on disk.
The model-backed checks (restored pages, answers from the appended copy) are in test_ask.py."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from repochat.config import load_settings
from repochat.errors import ConfigError
from repochat.answer.prefix_layout import Layout, LayoutMemory, arrange, fresh_layout, stale_share
from repochat.answer.prompt import RenderedFile, render_file

SHARE = 0.35


def _files(**texts: str) -> list[RenderedFile]:
    return [render_file(path.replace("_", "."), text) for path, text in texts.items()]


REPO = _files(a_py="alpha\n" * 40, b_py="beta\n" * 40, c_py="gamma\n" * 40, d_py="delta\n" * 40)


def _measure(text: str) -> int:
    return len(text)


def _paths(entries: list[RenderedFile]) -> list[str]:
    return [f.path + (" (deleted)" if f.deleted else "") for f in entries]


def test_without_a_remembered_layout_files_keep_the_given_order() -> None:
    layout = arrange(REPO, None, SHARE, _measure)
    assert layout.entries == REPO and layout.rebuilt and not layout.appended


def test_an_unchanged_repository_keeps_the_remembered_layout_as_it_is() -> None:
    remembered = Layout(REPO, len(REPO), changed=False)
    reordered = [REPO[1], REPO[0], *REPO[2:]]  # history moved, content did not: the cached order still serves
    layout = arrange(reordered, remembered, SHARE, _measure)
    assert layout.entries == REPO and not layout.changed


def test_an_edit_appends_the_new_version_and_keeps_everything_before_it() -> None:
    edited = render_file("a.py", "alpha\n" * 39 + "omega\n")
    layout = arrange([*REPO[1:], edited], Layout(REPO, len(REPO), changed=False), SHARE, _measure)
    assert layout.base == REPO and layout.appended == [edited] and layout.changed


def test_a_file_edited_twice_is_appended_twice_and_only_the_last_copy_is_current() -> None:
    first = render_file("b.py", "beta\n" * 39 + "one\n")
    second = render_file("b.py", "beta\n" * 39 + "two\n")
    remembered = arrange([REPO[0], *REPO[2:], first], Layout(REPO, len(REPO), changed=False), 1.0, _measure)
    layout = arrange([REPO[0], *REPO[2:], second], remembered, 1.0, _measure)
    assert layout.appended == [first, second]
    assert stale_share(layout, _measure) == (len(REPO[1].text) + len(first.text)) / sum(
        len(f.text) for f in layout.entries)


def test_a_deleted_file_gets_a_notice_appended() -> None:
    layout = arrange([REPO[0], *REPO[2:]], Layout(REPO, len(REPO), changed=False), SHARE, _measure)
    assert _paths(layout.appended) == ["b.py (deleted)"]


def test_too_many_superseded_copies_rebuild_the_layout_in_the_given_order() -> None:
    edited = [render_file(f.path, "changed\n" * 40) for f in REPO[:3]]  # 3 of 4 files: 3/7 superseded
    layout = arrange([REPO[3], *edited], Layout(REPO, len(REPO), changed=False), SHARE, _measure)
    assert layout.rebuilt and layout.entries == [REPO[3], *edited]


def test_a_rebuild_that_costs_no_more_than_appending_is_taken() -> None:
    edited = render_file("d.py", "delta\n" * 39 + "omega\n")  # the last file: rebuilding recomputes only it
    layout = arrange([*REPO[:3], edited], Layout(REPO, len(REPO), changed=False), SHARE, _measure)
    assert layout.rebuilt and layout.entries == [*REPO[:3], edited]


def test_a_share_of_zero_always_lays_out_afresh() -> None:
    edited = render_file("a.py", "alpha\n" * 39 + "omega\n")
    layout = arrange([*REPO[1:], edited], Layout(REPO, len(REPO), changed=False), 0, _measure)
    assert layout.rebuilt and layout.entries == [*REPO[1:], edited]


def test_memory_round_trip_keeps_entries_and_deletions(tmp_path: Path) -> None:
    memory = LayoutMemory(tmp_path, tmp_path / "repo")
    layout = arrange([REPO[0], *REPO[2:]], fresh_layout(REPO), SHARE, _measure)
    memory.save(layout)
    loaded = memory.load()
    assert loaded is not None and loaded.entries == layout.entries and loaded.laid_out == layout.laid_out
    assert not loaded.changed


def test_each_repository_root_and_file_scope_has_its_own_memory(tmp_path: Path) -> None:
    LayoutMemory(tmp_path, tmp_path / "one", "max_file_size=100").save(fresh_layout(REPO))
    assert LayoutMemory(tmp_path, tmp_path / "two", "max_file_size=100").load() is None
    assert LayoutMemory(tmp_path, tmp_path / "one", "max_file_size=200").load() is None
    assert LayoutMemory(tmp_path, tmp_path / "one", "max_file_size=100").load() is not None


def test_a_cache_dir_with_a_tilde_is_under_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert LayoutMemory(Path("~/cache"), tmp_path / "repo").path.is_relative_to(tmp_path / "cache")


def test_a_layout_saved_by_another_process_since_loading_is_kept(tmp_path: Path) -> None:
    ours, theirs = LayoutMemory(tmp_path, tmp_path / "repo"), LayoutMemory(tmp_path, tmp_path / "repo")
    assert ours.load() is None and theirs.load() is None
    assert theirs.save(fresh_layout(REPO[:2]))
    assert not ours.save(fresh_layout(REPO))
    kept = LayoutMemory(tmp_path, tmp_path / "repo").load()
    assert kept is not None and kept.entries == REPO[:2]


def test_old_layouts_beyond_the_limit_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LayoutMemory, "KEEP_LAYOUTS", 2)
    memories = [LayoutMemory(tmp_path, tmp_path / f"repo{n}") for n in range(3)]
    for age, memory in enumerate(memories):
        memory.load()
        memory.save(fresh_layout(REPO))
        os.utime(memory.path, (1_000_000 + age, 1_000_000 + age))  # repo0 is the least recently saved
    LayoutMemory(tmp_path, tmp_path / "repo3").save(fresh_layout(REPO))
    assert [m.path.exists() for m in memories] == [False, False, True]  # repo3 and repo2 are kept


def test_a_damaged_memory_file_is_ignored(tmp_path: Path) -> None:
    memory = LayoutMemory(tmp_path, tmp_path / "repo")
    memory.save(fresh_layout(REPO))
    memory.path.write_bytes(memory.path.read_bytes()[:40])  # truncated
    assert memory.load() is None
    memory.path.write_bytes(gzip.compress(b'{"format": 1, "laid_out": 1, "entries": [["a.py"]]}'))
    assert memory.load() is None


def test_the_share_setting_is_read_and_checked(tmp_path: Path) -> None:
    assert load_settings(tmp_path, environ={"REPOCHAT_MAX_STALE_SHARE": "0.5"}).max_stale_share == 0.5
    with pytest.raises(ConfigError, match="max_stale_share must be between 0 and 1"):
        load_settings(tmp_path, {"max_stale_share": "1.5"}, environ={})


def test_a_cache_dir_that_cannot_be_written_only_loses_the_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    memory = LayoutMemory(blocker, tmp_path / "repo")
    assert memory.load() is None
    assert not memory.save(fresh_layout(REPO))
