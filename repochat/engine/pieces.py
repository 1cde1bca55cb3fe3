"""Position-independent KV pieces: a file's (or an excerpt's) KV computed once, alone, and placed anywhere later.

A piece is prefilled on its own behind the fixed head (chat-template start and system prompt) at positions
[h, h+n), in the scratch sequence, so it attends to the head and to itself only. Its cells are saved, keyed by the
cache identity, the head and the piece's own tokens: not by what comes before it. To assemble a context, each piece
is loaded into the scratch sequence and shifted to where it sits (llama.cpp corrects the keys' rotary embedding at
the next decode), then handed to the main sequence. Pieces do not attend to each other; the question, decoded after
them, attends to all. Checked with the default model: three demo files assembled in 0.02 s instead of 34 s of
prefill, the next-token distribution after the question within KL 0.014 of a full prefill (../shared/DESIGN.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .context import SEQ_MAIN, SEQ_PAGE, LlamaContext

PIECE_INDEX = 0  # the page-store slot of every piece file (pieces are not a chain)


def piece_store_identity(identity: str) -> str:
    """Pieces live beside the prefix pages of the same cache identity, in their own directory."""
    return f"pieces;{identity}"


def piece_keys(identity: str, head: list[int], pieces: list[list[int]]) -> list[str]:
    """Key of the head, then of each piece: sha256(identity, head tokens, own tokens); no prefix in it."""
    head_digest = hashlib.sha256(identity.encode())
    head_digest.update(_token_bytes(head))
    keys = [head_digest.hexdigest()]
    for tokens in pieces:
        digest = head_digest.copy()
        digest.update(b"|piece|")
        digest.update(_token_bytes(tokens))
        keys.append(digest.hexdigest())
    return keys


def _token_bytes(tokens: list[int]) -> bytes:
    return np.asarray(tokens, dtype="<i4").tobytes()


@dataclass(frozen=True)
class Placement:
    """Where a context's units sit: unit 0 is the head at position 0, unit i > 0 is piece i - 1."""

    keys: list[str]
    starts: list[int]  # starts[i] = position of unit i; starts[-1] = the end of the context

    @classmethod
    def of(cls, identity: str, head: list[int], pieces: list[list[int]]) -> Placement:
        starts = [0, len(head)]
        for tokens in pieces:
            starts.append(starts[-1] + len(tokens))
        return cls(piece_keys(identity, head, pieces), starts)

    def length(self, unit: int) -> int:
        return self.starts[unit + 1] - self.starts[unit]


def restore_piece(context: LlamaContext, data: bytearray, head_tokens: int, tokens: int, offset: int) -> bool:
    """Load a saved piece (cells at [head_tokens, head_tokens + tokens)) and move it to ``offset`` in the main
    sequence; False if llama.cpp rejects the data."""
    if not context.import_seq(data, SEQ_PAGE):
        return False
    _hand_over(context, head_tokens, tokens, offset)
    return True


def compute_piece(context: LlamaContext, piece: list[int], head_tokens: int, offset: int) -> bytearray:
    """Prefill ``piece`` alone behind the head (held by the main sequence at [0, head_tokens)), return its cells
    for saving, and move it to ``offset`` in the main sequence."""
    context.seq_copy(SEQ_MAIN, SEQ_PAGE, 0, head_tokens)  # shared cells: the head is not computed again
    try:
        context.decode(piece, head_tokens, seq=SEQ_PAGE)
        context.seq_remove(SEQ_PAGE, 0, head_tokens)
        data = context.export_seq(SEQ_PAGE)
    except BaseException:
        context.seq_remove(SEQ_PAGE)
        raise
    _hand_over(context, head_tokens, len(piece), offset)
    return data


def relink_piece(context: LlamaContext, piece: list[int], offset: int, tokens: int) -> int:
    """Recompute the first ``tokens`` tokens of the piece at ``offset`` in the main sequence, now that they can see
    everything before them; returns how many were recomputed. llama.cpp only appends to a sequence, so they are
    decoded into the scratch sequence behind a copy of what precedes them and handed back."""
    count = min(tokens, len(piece))
    context.seq_copy(SEQ_MAIN, SEQ_PAGE, 0, offset)
    try:
        context.seq_remove(SEQ_MAIN, offset, offset + count)
        context.decode(piece[:count], offset, seq=SEQ_PAGE)
        context.seq_copy(SEQ_PAGE, SEQ_MAIN, offset, offset + count)
    finally:
        context.seq_remove(SEQ_PAGE)
    return count


def _hand_over(context: LlamaContext, head_tokens: int, tokens: int, offset: int) -> None:
    """Shift the scratch sequence's piece to ``offset`` and give its cells to the main sequence."""
    if offset != head_tokens:
        context.shift(SEQ_PAGE, head_tokens, head_tokens + tokens, offset - head_tokens)
    context.seq_copy(SEQ_PAGE, SEQ_MAIN)
    context.seq_remove(SEQ_PAGE)

