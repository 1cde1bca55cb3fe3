"""What the engine reports back: how a context's prefix got into the KV cache (PrefixStats, the coverage line's
cache figures) and what a generation produced (Generation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("repochat.engine")


@dataclass
class PrefixStats:
    """How the prefix got into the context, counted in units: prefix pages, or the head and pieces."""

    unit: str = "page"  # or "piece"
    pages_total: int = 0
    pages_in_memory: int = 0
    pages_restored: int = 0
    pages_prefilled: int = 0
    pages_saved: int = 0
    memory_tokens: int = 0
    restored_tokens: int = 0
    prefilled_tokens: int = 0
    restore_seconds: float = 0.0
    prefill_seconds: float = 0.0
    link_tokens: int = 0  # pieces: tokens at piece starts recomputed behind the pieces before them
    link_seconds: float = 0.0
    links_restored: int = 0  # pieces: links saved by an earlier assembly with the same piece before
    notices: list[str] = field(default_factory=list)

    @property
    def cache(self) -> str:
        if not self.prefilled_tokens:
            return "hit"
        return "partial" if self.memory_tokens or self.restored_tokens else "miss"


@dataclass
class Generation:
    text: str
    tokens: int
    first_token_at: float  # time.monotonic() when the first answer token was sampled (0: none)
    stopped: str  # "end", "length" or "context"
    end: int = 0  # position after the last decoded token, where a continuation goes (the end of turn is not decoded)


def notice(stats: PrefixStats, message: str) -> None:
    """Tell the user (the coverage line's notices) and the log."""
    stats.notices.append(message)
    log.warning("%s", message)
