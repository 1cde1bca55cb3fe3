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
0.14. The link costs what a prefill of its tokens costs, most of a fully cached retrieval ask's time, so it is saved
too, keyed by the piece and the one before it: the same boundary in a later context (the next ask, or the files
around an edit that did not change) is restored and shifted like a piece. It then reflects what preceded the
boundary when it was computed, the same approximation a piece makes about everything before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .llama import SEQ_LINKS, SEQ_MAIN, SEQ_PAGE, LlamaContext
from .pagestore import PageStore

PIECE_INDEX = 0  # the page-store slot of every piece file (pieces are not a chain)
LINK_INDEX = 1  # the slot of every saved link


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

    def link_key(self, unit: int, link_tokens: int) -> str:
        """Key of the link of piece ``unit`` (>= 2): its first ``link_tokens`` recomputed behind the unit before it."""
        return hashlib.sha256(f"link|{link_tokens}|{self.keys[unit - 1]}|{self.keys[unit]}".encode()).hexdigest()

    def link_length(self, unit: int, link_tokens: int) -> int:
        """Tokens of unit's link: its first ``link_tokens``, or all of a shorter piece."""
        return min(link_tokens, self.length(unit))

    def link_units(self, linked: int, link_tokens: int) -> range:
        """The units whose link an assembly needs, when units before ``linked`` are in memory, linked already."""
        return range(max(linked, 2), len(self.keys)) if link_tokens else range(0)

    def prefill_spans(self, done: list[bool], links: list[int], link_tokens: int) -> list[tuple[int, int]]:
        """(tokens, start) of what an assembly prefills: each unit not ``done`` (the head in place, a piece alone
        behind it), then the links of units ``links`` (the head and the first piece have none)."""
        spans = [(self.length(unit), self.starts[1] if unit else 0) for unit, found in enumerate(done) if not found]
        return spans + [(self.link_length(unit, link_tokens), self.starts[unit]) for unit in links]


def missing_links(placement: Placement, store: PageStore, linked: int, link_tokens: int) -> list[int]:
    """The units whose link an assembly would compute: needed (``Placement.link_units``) and not saved."""
    return [unit for unit in placement.link_units(linked, link_tokens)
            if not store.exists(LINK_INDEX, placement.link_key(unit, link_tokens))]


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


def relink_pieces(context: LlamaContext, links: list[tuple[list[int], int]]) -> list[bytearray]:
    """Recompute the (tokens, offset) spans of the main sequence, now that they can see everything before them
    (the first tokens of each piece); returns each span's new cells, for saving. llama.cpp only appends to a
    sequence, so each span is decoded into a scratch sequence holding a copy of what precedes it, side by side with
    the others in one batch, and handed back. A span sees the others' alone-computed versions, not their
    recomputed ones."""
    cells = []
    for group in _groups([len(tokens) for tokens, _offset in links], context.params.n_batch):
        seqs = SEQ_LINKS[:len(group)]
        try:
            for seq, link in zip(seqs, group):
                context.seq_copy(SEQ_MAIN, seq, 0, links[link][1])
            context.decode_side_by_side([(*links[link], seq) for seq, link in zip(seqs, group)])
            for seq, link in zip(seqs, group):
                tokens, offset = links[link]
                context.seq_remove(seq, 0, offset)  # the copy of what precedes: the span alone is saved
                cells.append(context.export_seq(seq))
                _replace_span(context, seq, offset, offset + len(tokens))
        finally:
            for seq in seqs:
                context.seq_remove(seq)
    return cells


def restore_links(context: LlamaContext, links: list[tuple[bytearray, int, int]]) -> list[bool]:
    """Put saved links (data, tokens, offset: ``tokens`` cells at the positions they were computed at) over
    main-sequence positions [offset, offset + tokens), in place of the alone-computed cells; for each, False if
    llama.cpp rejects its data. Loaded and handed over in the groups and order of relink_pieces, so that the cells
    land in the same slots as when they were computed: attention then sums them in the same order, and a context
    assembled from saved links answers exactly as the one that computed them."""
    accepted = []
    for group in _groups([tokens for _data, tokens, _offset in links], context.params.n_batch):
        seqs = SEQ_LINKS[:len(group)]
        try:
            loaded = [context.import_seq(links[link][0], seq) for seq, link in zip(seqs, group)]
            for seq, link, ok in zip(seqs, group, loaded):
                _data, tokens, offset = links[link]
                if ok:
                    saved_at = context.pos_max(seq) - tokens + 1
                    context.shift(seq, saved_at, saved_at + tokens, offset - saved_at)
                    _replace_span(context, seq, offset, offset + tokens)
            accepted += loaded
        finally:
            for seq in seqs:
                context.seq_remove(seq)
    return accepted


def _replace_span(context: LlamaContext, seq: int, start: int, end: int) -> None:
    """The main sequence's cells at [start, end) become those of ``seq``."""
    context.seq_remove(SEQ_MAIN, start, end)
    context.seq_copy(seq, SEQ_MAIN, start, end)


def _groups(sizes: list[int], max_tokens: int) -> list[list[int]]:
    """Indexes of ``sizes`` in order, grouped for one batch each: at most ``max_tokens`` tokens and one scratch
    sequence (SEQ_LINKS) per part."""
    groups: list[list[int]] = [[]]
    for index, size in enumerate(sizes):
        if groups[-1] and (len(groups[-1]) == len(SEQ_LINKS) or
                           sum(sizes[part] for part in groups[-1]) + size > max_tokens):
            groups.append([])
        groups[-1].append(index)
    return [group for group in groups if group]


def _hand_over(context: LlamaContext, head_tokens: int, tokens: int, offset: int) -> None:
    """Shift the scratch sequence's piece to ``offset`` and give its cells to the main sequence."""
    if offset != head_tokens:
        context.shift(SEQ_PAGE, head_tokens, head_tokens + tokens, offset - head_tokens)
    context.seq_copy(SEQ_PAGE, SEQ_MAIN)
    context.seq_remove(SEQ_PAGE)

