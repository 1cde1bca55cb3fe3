"""The part of LanceDB's table API the index relies on, as Protocols: what ``IndexStore.table`` hands out is typed by
these rather than ``Any``, so mypy checks every query the retrieval and indexing code builds.

At run time a table is LanceDB's own, wrapped in ``lance_errors.Guarded`` (which forwards every call and wraps the
query builders it returns the same way). Under TYPE_CHECKING, LanceDB's classes are checked against these Protocols
(``_conforms`` below), so an upgrade that changes a method the code calls fails mypy rather than a query at run time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterable, Literal, Protocol, Self, overload

if TYPE_CHECKING:
    from lancedb.index import FTS, IndexConfig
    from lancedb.query import LanceFtsQueryBuilder, LanceQueryBuilder, LanceTakeQueryBuilder
    from lancedb.table import IndexStatistics, LanceTable, Table as AnyLanceTable

# pyarrow ships no type hints: an Arrow table is whatever pyarrow returns (read with .column(...).to_pylist()).
ArrowTable = Any
Row = dict[str, Any]


class Query(Protocol):
    """A scan or full-text search being built: chained, then read as Arrow or as rows."""

    def select(self, columns: list[str]) -> Self: ...
    def where(self, where: str, prefilter: bool = ...) -> Self: ...  # prefilter: filter before ranking
    def limit(self, limit: int | None) -> Self: ...  # None: every matching row
    def with_row_id(self, with_row_id: bool) -> Self: ...
    def to_arrow(self) -> ArrowTable: ...
    def to_list(self) -> list[Row]: ...


class TakeQuery(Protocol):
    """Rows fetched by row id (from a search's ``_rowid``)."""

    def select(self, columns: list[str]) -> Self: ...
    def to_list(self) -> list[Row]: ...


class Table(Protocol):
    """One LanceDB table: read, written, indexed and compacted by the store and upkeep, searched by retrieval."""

    @property
    def version(self) -> int: ...
    def checkout(self, version: int) -> object: ...
    @overload
    def search(self) -> Query: ...  # every row, filtered with .where
    @overload
    def search(self, query: str, *, query_type: Literal["fts"], fts_columns: str) -> Query: ...  # BM25, a column
    def take_row_ids(self, row_ids: list[int]) -> TakeQuery: ...
    def to_arrow(self) -> ArrowTable: ...
    def count_rows(self) -> int: ...
    def add(self, data: ArrowTable) -> object: ...
    def delete(self, where: str) -> object: ...
    def create_index(self, column: str, *, config: FTS, replace: bool) -> None: ...
    def index_stats(self, index_name: str) -> IndexStatistics | None: ...
    def list_indices(self) -> Iterable[IndexConfig]: ...
    def optimize(self, *, cleanup_older_than: timedelta | None) -> object: ...
    def list_versions(self) -> list[dict[str, Any]]: ...


if TYPE_CHECKING:
    def _conforms(opened: AnyLanceTable, local: LanceTable, query: LanceQueryBuilder, fts: LanceFtsQueryBuilder,
                  take: LanceTakeQueryBuilder) -> list[object]:
        """Never called: mypy checks here that LanceDB's own classes (what DBConnection.open_table says it returns,
        the local table it does return, their query builders) offer what the Protocols above promise."""
        tables: list[Table] = [opened, local]
        queries: list[Query] = [query, fts]
        takes: list[TakeQuery] = [take]
        return [tables, queries, takes]
