"""Where LanceDB's errors become ours: one-line IndexStoreErrors instead of lance's multi-line, Rust-located messages.

A table is wrapped in ``Guarded`` so that every call on it (and on the query builders it returns) is translated,
``writing`` does the same for the writes that create an index, and ``IndexDamaged`` is the error `repochat index`
repairs. Deciding which error a failure is (damage, or a reader whose snapshot moved on) needs the store's state and
stays in store.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

from ..errors import IndexStoreError
from .lance_api import Table
from .location import IndexDir

if TYPE_CHECKING:
    from lancedb.table import Table as LanceTable

T = TypeVar("T")

LANCE_ERRORS = (OSError, RuntimeError)  # what LanceDB raises for IO and format failures
_SOURCE_LOCATION = re.compile(r",?\s*/\S+\.rs:\d+:\d+")  # the Rust file:line lance appends to a message
_WRAPPED = re.compile(r"(?:Wrapped error: |Generic N/A error: )+")


class IndexDamaged(IndexStoreError):
    """A table of the index cannot be read (a data file truncated or gone, an index folder deleted, meta.json
    unreadable); `repochat index` repairs it."""

    def __init__(self, path: IndexDir, detail: str) -> None:
        super().__init__(f"the index at {path} is corrupt or damaged ({detail}); run `repochat index` to repair it")
        self.detail = detail


class Guarded:
    """A LanceDB table or query builder whose failures come out as one-line IndexStoreErrors. Damage shows at the
    first call that touches a broken file, not at open (LanceDB opens lazily), so every call is guarded; what a
    call returns is guarded too when it is another LanceDB object (a query builder), and passed as is otherwise.

    ``guard(call)`` runs a call and raises the error for its failure (the store's ``_guard``)."""

    __slots__ = ("_target", "_guard")

    def __init__(self, target: Any, guard: Callable[[Callable[[], Any]], Any]) -> None:
        self._target = target
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        value = self._guard(lambda: getattr(self._target, name))
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._guard(lambda: value(*args, **kwargs))
            return Guarded(result, self._guard) if type(result).__module__.startswith("lancedb") else result
        return call


def guarded_table(table: LanceTable, guard: Callable[[Callable[[], Any]], Any]) -> Table:
    """``table`` behind a Guarded. The cast is honest: Guarded forwards every attribute and call (wrapping the query
    builders returned), so it offers what lance_api.Table describes, which LanceDB's table is checked against."""
    return cast(Table, Guarded(table, guard))


def detail(exc: BaseException) -> str:
    """An error's message on one line, without lance's "lance error:" prefix and Rust source location."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = " ".join(text.split()).removeprefix("lance error: ")
    return _WRAPPED.sub("", _SOURCE_LOCATION.sub("", text))[:300] or type(exc).__name__


def writing(path: IndexDir, call: Callable[[], T]) -> T:
    """``call()``, a write that creates the index; a failure says where and why (a read-only folder, a full disk)."""
    try:
        return call()
    except LANCE_ERRORS as exc:
        raise IndexStoreError(f"cannot write the index at {path}: {detail(exc)}") from exc
