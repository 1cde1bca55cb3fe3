"""The seam between the commands and what runs the model: the local llama.cpp engine (engine/session.py) or a
remote OpenAI-compatible server (engine/remote.py).

The two differ in what they can be asked. The local engine holds a llama.cpp context: ask and review place KV
pages and pieces in it, read logits (review's verdict, the sources trailer's picks) and decode token by token. A
server takes text and a chat template of its own, keeps its KV cache to itself and returns text; what it offers is a
streamed answer, an answer constrained to a grammar or JSON schema, a token count and its context length. So ask and
review keep one path per kind (answer/ask.py / answer/remote.py, review/run.py's _run_model / review/remote.py), and this module
says which one a command takes: ``settings.engine`` set means the server.

``ChatEngine`` is what the remote paths need, so another server client (or a local engine behind the same text
interface) can stand in for RemoteEngine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..callbacks import TextSink
from ..config import Settings

if TYPE_CHECKING:
    from .remote import Completion



class ChatEngine(Protocol):
    """A text-in, text-out engine with its own template and cache (answer/remote.py, review/remote.py use this),
    configured by ``settings`` and closed when the command is done with it."""

    settings: Settings
    url: str

    @property
    def server(self) -> str: ...  # its kind, as probed (llama.cpp, vLLM, ...)

    @property
    def model(self) -> str: ...

    def close(self) -> None: ...

    def context_limit(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def stream(self, messages: list[dict[str, str]], max_tokens: int, on_text: TextSink | None = None) \
        -> Completion: ...

    def constrained(self, messages: list[dict[str, str]], grammar: str, schema: dict[str, Any],
                    max_tokens: int) -> Completion: ...


def is_remote(settings: Settings) -> bool:
    """Whether the commands run on a server (``engine`` set by --engine, REPOCHAT_ENGINE or the config)."""
    return bool(settings.engine)
