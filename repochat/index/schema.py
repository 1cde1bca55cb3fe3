"""What the index's tables hold: their columns, the full-text indexes over them, the folder that names the schema
version, and how a chunk becomes a row and a value becomes part of a filter. How the tables are opened, read and
written is store.py's.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pyarrow as pa

from ..records import Chunk

SCHEMA_VERSION = 4  # 4: the secret rules of issue 10 (an index built before may hold what they now leave out)
FOLDER = f"index-v{SCHEMA_VERSION}"

CHUNKS = pa.schema([
    ("path", pa.string()), ("language", pa.string()), ("kind", pa.string()), ("symbol", pa.string()),
    ("start_line", pa.int32()), ("end_line", pa.int32()), ("text", pa.string()), ("context", pa.string()),
    ("signature", pa.string()), ("doc", pa.string()), ("tokens", pa.int32()),
    ("search_text", pa.string()), ("names", pa.string()), ("code", pa.string()), ("embed_key", pa.string()),
])
SYMBOLS = pa.schema([
    ("path", pa.string()), ("name", pa.string()), ("kind", pa.string()), ("role", pa.string()),
    ("line", pa.int32()), ("scope", pa.string()),
])
FILES = pa.schema([
    ("path", pa.string()), ("sha", pa.string()), ("size", pa.int64()), ("mtime", pa.float64()),
    ("language", pa.string()), ("status", pa.string()), ("chunks", pa.int32()), ("tokens", pa.int64()),
])
# The whole text; the definition's name and parameters alone; and its code without its own doc, so that what the
# code does is matched on its identifiers without a neighbour's docstring outweighing it.
FTS_COLUMNS = ("search_text", "names", "code")


class FtsOptions(TypedDict):
    """The options of lancedb.index.FTS that the index sets (typed, so FTS(**FTS_CONFIG) is checked)."""

    base_tokenizer: str
    stem: bool
    remove_stop_words: bool
    ascii_folding: bool
    lower_case: bool


FTS_CONFIG = FtsOptions(base_tokenizer="icu", stem=True, remove_stop_words=True, ascii_folding=True, lower_case=True)

SNAPSHOT_TABLES = ("chunks", "symbols", "files")
CONTENT_TABLES = {"chunks": CHUNKS, "symbols": SYMBOLS, "files": FILES}  # rebuilt together: files rows count chunks


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def chunk_row(chunk: Chunk, search_text: str, names: str, code: str, embed_key: str) -> dict[str, Any]:
    row = dict(vars(chunk))  # dataclasses.asdict deep-copies field by field: 10x slower on 50K chunks
    row["search_text"] = search_text
    row["names"] = names
    row["code"] = code
    row["embed_key"] = embed_key
    return row
