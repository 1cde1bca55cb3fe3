"""Position-independent KV pieces: a file's (or an excerpt's) KV computed once, alone, and placed anywhere later.

A piece is prefilled on its own behind the fixed head (chat-template start and system prompt) at positions
[h, h+n), in the scratch sequence, so it attends to the head and to itself only. Its cells are saved, keyed by the
cache identity, the head and the piece's own tokens: not by what comes before it. To assemble a context, each piece
is loaded into the scratch sequence and shifted to where it sits (llama.cpp corrects the keys' rotary embedding at
the next decode), then handed to the main sequence. Pieces do not attend to each other; the question, decoded after
them, attends to all. Checked with the default model: three demo files assembled in 0.02 s instead of 34 s of
prefill, the next-token distribution after the question within KL 0.014 of a full prefill (../shared/DESIGN.md).

On other questions the gap was larger (KL up to 1.36, the top token flipped), so after assembly the first tokens of
each piece are recomputed behind the pieces before it (the "link", as EPIC does): 32 tokens took that worst case to
0.14. The link costs what a prefill of its tokens costs; it is most of a fully cached retrieval ask's time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .context import SEQ_LINKS, SEQ_MAIN, SEQ_PAGE, LlamaContext

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

    def prefill_spans(self, done: list[bool], linked: int, link_tokens: int) -> list[tuple[int, int]]:
        """(tokens, start) of what an assembly prefills: each unit not ``done`` (the head in place, a piece alone
        behind it), then the links of units ``linked``.. (the head and the first piece have none)."""
        spans = [(self.length(unit), self.starts[1] if unit else 0) for unit, found in enumerate(done) if not found]
        if link_tokens:
            spans += [(min(link_tokens, self.length(unit)), self.starts[unit])
                      for unit in range(max(linked, 2), len(self.keys))]
        return spans


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
    data = prefill_alone(context, piece, head_tokens)
    _hand_over(context, head_tokens, len(piece), offset)
    return data


def prefill_alone(context: LlamaContext, piece: list[int], head_tokens: int,
                  between_batches: Callable[[], None] | None = None) -> bytearray:
    """Prefill ``piece`` into the scratch sequence behind the head, batch by batch (``between_batches`` runs
    between two, and may raise to stop), and return its cells; the scratch sequence keeps them for the caller to
    hand over or drop (on an error it is emptied)."""
    context.seq_copy(SEQ_MAIN, SEQ_PAGE, 0, head_tokens)  # shared cells: the head is not computed again
    try:
        step = context.params.n_batch
        for start in range(0, len(piece), step):
            if start and between_batches:
                between_batches()
            context.decode(piece[start:start + step], head_tokens + start, seq=SEQ_PAGE)
        context.seq_remove(SEQ_PAGE, 0, head_tokens)
        return context.export_seq(SEQ_PAGE)
    except BaseException:
        context.seq_remove(SEQ_PAGE)
        raise


def relink_pieces(context: LlamaContext, links: list[tuple[list[int], int]]) -> int:
    """Recompute the (tokens, offset) spans of the main sequence, now that they can see everything before them
    (the first tokens of each piece); returns how many tokens were recomputed. llama.cpp only appends to a
    sequence, so each span is decoded into a scratch sequence holding a copy of what precedes it, side by side with
    the others in one batch, and handed back. A span sees the others' alone-computed versions, not their
    recomputed ones."""
    done = 0
    for group in _batches(links, context.params.n_batch, len(SEQ_LINKS)):
        seqs = SEQ_LINKS[:len(group)]
        try:
            for seq, (_tokens, offset) in zip(seqs, group):
                context.seq_copy(SEQ_MAIN, seq, 0, offset)
            context.decode_side_by_side([(tokens, offset, seq) for seq, (tokens, offset) in zip(seqs, group)])
            for seq, (tokens, offset) in zip(seqs, group):
                context.seq_remove(SEQ_MAIN, offset, offset + len(tokens))
                context.seq_copy(seq, SEQ_MAIN, offset, offset + len(tokens))
        finally:
            for seq in seqs:
                context.seq_remove(seq)
        done += sum(len(tokens) for tokens, _offset in group)
    return done


def _batches(links: list[tuple[list[int], int]], max_tokens: int,
             max_parts: int) -> list[list[tuple[list[int], int]]]:
    groups: list[list[tuple[list[int], int]]] = [[]]
    for link in links:
        if groups[-1] and (len(groups[-1]) == max_parts or
                           sum(len(tokens) for tokens, _ in groups[-1]) + len(link[0]) > max_tokens):
            groups.append([])
        groups[-1].append(link)
    return [group for group in groups if group]


def _hand_over(context: LlamaContext, head_tokens: int, tokens: int, offset: int) -> None:
    """Shift the scratch sequence's piece to ``offset`` and give its cells to the main sequence."""
    if offset != head_tokens:
        context.shift(SEQ_PAGE, head_tokens, head_tokens + tokens, offset - head_tokens)
    context.seq_copy(SEQ_PAGE, SEQ_MAIN)
    context.seq_remove(SEQ_PAGE)

