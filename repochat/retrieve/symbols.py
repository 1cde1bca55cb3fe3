"""'Where is X defined' and 'who uses X', answered from the symbols table."""

from __future__ import annotations

from dataclasses import dataclass

from ..index.schema import sql_quote
from ..index.store import IndexStore


@dataclass(frozen=True)
class SymbolHit:
    path: str
    line: int
    name: str
    kind: str
    role: str
    scope: str

    def location(self) -> str:
        return f"{self.path}:{self.line}"


def find_symbols(store: IndexStore, name: str, role: str | None = None, limit: int = 200) -> list[SymbolHit]:
    """Definitions and/or references of name. 'Class.method' matches the method defined inside Class."""
    bare = name.rsplit(".", 1)[-1]
    clauses = [f"name = {sql_quote(bare)}"]
    if role:
        clauses.append(f"role = {sql_quote(role)}")
    rows = store.table("symbols").search().where(" AND ".join(clauses)).limit(None).to_list()
    hits = [SymbolHit(r["path"], r["line"], r["name"], r["kind"], r["role"], r["scope"]) for r in rows]
    if "." in name:
        owner = name.rsplit(".", 1)[0]
        hits = [h for h in hits if h.role != "definition" or h.scope.endswith(owner)]
    hits.sort(key=lambda h: (h.role != "definition", h.path, h.line))
    return hits[:limit]


def callers(store: IndexStore, name: str) -> dict[str, list[SymbolHit]]:
    """References to name grouped by the definition they occur in ('' = module level)."""
    grouped: dict[str, list[SymbolHit]] = {}
    for hit in find_symbols(store, name, role="reference", limit=10_000):
        grouped.setdefault(hit.scope, []).append(hit)
    return grouped
