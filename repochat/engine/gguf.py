"""Read a GGUF file's header: metadata key/values and tensor layout, without loading the model.

The planner needs the attention shape (layers, KV heads, head size, sliding window) before any memory is committed,
and a truncated or foreign file must be rejected with a one-line error rather than a crash inside llama.cpp.
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import functools
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError

GGUF_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
# Arrays longer than this (vocabularies, merges) are skipped and only counted: nobody here needs their items.
_MAX_KEPT_ARRAY = 4096

# value type id -> struct format of one scalar
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# ggml tensor type id -> (elements per block, bytes per block), used to check that the file holds all tensor data.
_GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}


@dataclass(frozen=True)
class SkippedArray:
    """Stands in for a long array whose items were not read."""

    length: int


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensor_count: int
    data_end: int  # bytes the tensor data needs; the file must be at least this long
    file_size: int
    tensor_types: dict[int, int] = field(default_factory=dict)  # ggml type id -> count

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        """``<architecture>.<suffix>``, e.g. arch_value('block_count')."""
        return self.metadata.get(f"{self.architecture}.{suffix}", default)


class _Reader:
    def __init__(self, buffer: mmap.mmap | bytes, path: Path) -> None:
        self.buffer = buffer
        self.offset = 0
        self.path = path

    def scalar(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.buffer):
            raise ModelError(f"{self.path}: truncated GGUF header")
        (value,) = struct.unpack_from(fmt, self.buffer, self.offset)
        self.offset += size
        return value

    def string(self) -> str:
        length = self.scalar("<Q")
        end = self.offset + length
        if end > len(self.buffer):
            raise ModelError(f"{self.path}: truncated GGUF header")
        raw = bytes(self.buffer[self.offset:end])
        self.offset = end
        return raw.decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            length = self.scalar("<Q")  # read first: it moves self.offset
            self.offset += length
        if self.offset > len(self.buffer):
            raise ModelError(f"{self.path}: truncated GGUF header")

    def value(self, type_id: int) -> Any:
        if type_id in _SCALARS:
            return self.scalar(_SCALARS[type_id])
        if type_id == _STRING:
            return self.string()
        if type_id == _ARRAY:
            return self.array()
        raise ModelError(f"{self.path}: corrupt GGUF header (unknown value type {type_id})")

    def array(self) -> Any:
        item_type = self.scalar("<I")
        count = self.scalar("<Q")
        if count <= _MAX_KEPT_ARRAY:
            return [self.value(item_type) for _ in range(count)]
        if item_type in _SCALARS:
            self.offset += struct.calcsize(_SCALARS[item_type]) * count
        elif item_type == _STRING:
            self.skip_strings(count)
        else:
            for _ in range(count):
                self.value(item_type)
        if self.offset > len(self.buffer):
            raise ModelError(f"{self.path}: truncated GGUF header")
        return SkippedArray(count)


def _tensor_bytes(dims: list[int], type_id: int) -> int:
    elements = 1
    for dim in dims:
        elements *= dim
    block_elements, block_bytes = _GGML_BLOCKS.get(type_id, (1, 0))  # unknown type: size unchecked
    return elements // block_elements * block_bytes


def _read_tensor_table(reader: _Reader, count: int, alignment: int) -> tuple[int, dict[int, int]]:
    """Returns (bytes from the file start that the tensor data needs, tensor type histogram)."""
    furthest = 0
    types: dict[int, int] = {}
    for _ in range(count):
        reader.string()
        n_dims = reader.scalar("<I")
        dims = [reader.scalar("<Q") for _ in range(n_dims)]
        type_id = reader.scalar("<I")
        offset = reader.scalar("<Q")
        furthest = max(furthest, offset + _tensor_bytes(dims, type_id))
        types[type_id] = types.get(type_id, 0) + 1
    if not count:
        return reader.offset, types
    data_start = -(-reader.offset // alignment) * alignment
    return data_start + furthest, types


def read_gguf(path: Path) -> GGUFInfo:
    """Parse the header of ``path``; raise ModelError (one line) if it is missing, not a GGUF, or truncated.
    Parsed headers are remembered per (path, size, mtime): an ask consults them several times."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    stat = path.stat()
    return _read_gguf_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_gguf_cached(path: Path, file_size: int, _mtime_ns: int) -> GGUFInfo:
    if file_size < 24:
        raise ModelError(f"{path}: not a GGUF model file (too small)")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        if buffer[:4] != GGUF_MAGIC:
            raise ModelError(f"{path}: not a GGUF model file (bad magic {bytes(buffer[:4])!r})")
        reader = _Reader(buffer, path)
        reader.offset = 4
        version = reader.scalar("<I")
        if version not in (2, 3):
            raise ModelError(f"{path}: unsupported GGUF version {version}")
        tensor_count, kv_count = reader.scalar("<Q"), reader.scalar("<Q")
        metadata: dict[str, Any] = {}
        for _ in range(kv_count):
            key = reader.string()
            metadata[key] = reader.value(reader.scalar("<I"))
        alignment = int(metadata.get("general.alignment", _DEFAULT_ALIGNMENT))
        data_end, types = _read_tensor_table(reader, tensor_count, alignment)
    if data_end > file_size:
        raise ModelError(f"{path}: truncated model file ({file_size:,} of {data_end:,} bytes)")
    return GGUFInfo(path, version, metadata, tensor_count, data_end, file_size, types)
