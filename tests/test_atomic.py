"""Atomic writes: the target is the old file or the whole new one, and no temporary file is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from repochat.atomic import replacing, write_atomic


def test_chunks_land_in_order_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "page.kvp"
    target.write_bytes(b"old")
    write_atomic(target, b"head", bytearray(b"-body"), prefix=".tmp-", suffix=".kvp")
    assert target.read_bytes() == b"head-body"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.kvp"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "layout"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with replacing(target, prefix=".layout-") as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"]


def test_the_temporary_sits_beside_the_target_under_the_callers_prefix(tmp_path: Path) -> None:
    # beside: a rename across file systems is not atomic; the prefix: callers sweep what a killed process left
    target = tmp_path / "model.gguf"
    with replacing(target, prefix="model.gguf", suffix=".part") as temporary:
        assert temporary.parent == tmp_path
        assert temporary.name.startswith("model.gguf") and temporary.name.endswith(".part")
        assert not target.exists()  # nothing is visible under the final name before the block ends
        temporary.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
