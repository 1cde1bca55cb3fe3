"""An engine on another machine: any server that speaks the OpenAI HTTP API (llama.cpp's llama-server,
llama-cpp-python's `python -m llama_cpp.server`, vLLM, SGLang).

The server owns the model, its chat template and its KV cache. What repochat controls is the prompt: the
whole-repository prefix goes first, byte-identical from one question to the next (stability order), so the server's
prefix cache (llama-server ``cache_prompt``, vLLM's automatic prefix caching, llama-cpp-python's reuse of the
previous prompt's common prefix) skips it and prefills only the question. What the server says it reused is
reported where its API says it: ``usage.prompt_tokens_details.cached_tokens`` (vLLM, OpenAI) or ``timings.cache_n``
(llama-server); llama-cpp-python's server does not say, so its count is None.

Servers differ in what they offer beyond the OpenAI API, so the kind is probed once: its tokenizer endpoint (exact
token counts; else a local estimate), its context length (else ``engine_context``), and how it constrains output
(a GBNF grammar on llama.cpp servers, a JSON schema elsewhere). Every failure is one line: a RemoteError subclass.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx

from ..callbacks import TextSink
from ..config import Settings
from ..errors import EngineError
from ..tokens import estimate_tokens

LLAMA_SERVER, LLAMA_CPP_PYTHON, VLLM, OPENAI = "llama-server", "llama-cpp-python", "vllm", "openai"
GRAMMAR_KINDS = (LLAMA_SERVER, LLAMA_CPP_PYTHON)  # servers that take a GBNF grammar (and cache_prompt)
CONNECT_SECONDS = 10.0
PROBE_SECONDS = 30.0  # the small requests that find out what the server is
TEMPLATE_TOKENS = 32  # per message: the chat template's role headers and end-of-turn markers, by a generous guess


class RemoteError(EngineError):
    """The engine server could not answer."""


class ServerUnavailable(RemoteError):
    """Nothing answers at the engine URL."""


class ServerTimeout(RemoteError):
    """The server went quiet for longer than engine_timeout."""


class ServerAuthError(RemoteError):
    """The server refused the API key (HTTP 401 / 403)."""


class ContextTooLong(RemoteError):
    """The prompt does not fit in the server's context."""


@dataclass
class Completion:
    text: str
    tokens: int  # completion tokens: the server's usage, else the streamed chunks
    prompt_tokens: int | None  # as the server counted them (None: it did not say)
    cached_tokens: int | None  # prompt tokens the server took from its cache (None: its API does not say)
    first_token_at: float  # time.monotonic() of the first answer text (0: none)
    stopped: str  # "end" or "length"


def api_key() -> str:
    return os.environ.get("REPOCHAT_API_KEY") or os.environ.get("OPENAI_API_KEY") or ""


def base_urls(url: str) -> tuple[str, str]:
    """(the OpenAI API base ending in /v1, the server root) from what the user gave (with or without /v1)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise RemoteError(f"engine must be an http:// or https:// URL, not {url!r}")
    root = url[:-3] if url.endswith("/v1") else url
    return root + "/v1", root


def cached_tokens(payload: dict[str, Any]) -> int | None:
    """The server's own count of prompt tokens served from its cache, from a response or its last stream chunk."""
    usage = payload.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    if isinstance(details.get("cached_tokens"), int):
        return details["cached_tokens"]
    timings = payload.get("timings") or {}
    if isinstance(timings.get("cache_n"), int):
        return timings["cache_n"]
    if isinstance(payload.get("tokens_cached"), int):  # llama-server's /completion
        return payload["tokens_cached"]
    return None


class RemoteEngine:
    """A client of one OpenAI-compatible server; what it is is probed on first use."""

    def __init__(self, url: str, settings: Settings, key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.api, self.root = base_urls(url)
        self.settings = settings
        key = api_key() if key is None else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(settings.engine_timeout, connect=CONNECT_SECONDS)
        self.client = httpx.Client(headers=headers, timeout=timeout)
        self._server: str | None = None
        self._model = settings.engine_model
        self._context = 0

    # --- what the server is ---------------------------------------------------------------------------------------
    @property
    def server(self) -> str:
        if self._server is None:
            self._probe()
        return self._server or OPENAI

    @property
    def model(self) -> str:
        self.server  # noqa: B018 - the probe names the model
        return self._model

    def _probe(self) -> None:
        """The model list (auth and reachability fail here, in one line), then which server this is."""
        listed = self._request("GET", f"{self.api}/models", timeout=PROBE_SECONDS).json().get("data") or [{}]
        entry = next((m for m in listed if m.get("id") == self._model), listed[0])
        self._model = self._model or str(entry.get("id", ""))
        meta = entry.get("meta") or {}
        self._context = int(entry.get("max_model_len") or meta.get("n_ctx_train") or 0)
        props = self._optional("GET", f"{self.root}/props")
        if props is not None and "default_generation_settings" in props:
            self._server = LLAMA_SERVER
            slot = props["default_generation_settings"]
            self._context = int(slot.get("n_ctx") or props.get("n_ctx") or self._context)
        elif self._optional("POST", f"{self.root}/extras/tokenize/count", json={"input": "x"}) is not None:
            self._server = LLAMA_CPP_PYTHON
        elif self._optional("POST", f"{self.root}/tokenize", json={"model": self._model, "prompt": "x"}):
            self._server = VLLM
        else:
            self._server = OPENAI

    def context_limit(self) -> int:
        """Tokens the server's context holds: engine_context if set (the server may not say, or say too much),
        else what the server reports."""
        if self.settings.engine_context:
            return self.settings.engine_context
        self.server  # noqa: B018 - the probe reads the context length
        if not self._context:
            raise RemoteError(f"the engine server at {self.url} ({self.server}) does not report its context length: "
                              "set engine_context (e.g. engine_context = 32768)")
        return self._context

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the server's own tokenizer where it has an endpoint, else a local estimate."""
        server = self.server
        if server == LLAMA_CPP_PYTHON:
            return int(self._post_json(f"{self.root}/extras/tokenize/count", {"input": text})["count"])
        if server == LLAMA_SERVER:
            return len(self._post_json(f"{self.root}/tokenize", {"content": text})["tokens"])
        if server == VLLM:
            return int(self._post_json(f"{self.root}/tokenize", {"model": self._model, "prompt": text})["count"])
        return estimate_tokens(text)

    def chat_tokens(self, messages: list[dict[str, str]]) -> int:
        """The prompt's size: the messages' tokens and the template around them."""
        return sum(self.count_tokens(m["content"]) + TEMPLATE_TOKENS for m in messages)

    # --- answers --------------------------------------------------------------------------------------------------
    def stream(self, messages: list[dict[str, str]], max_tokens: int, on_text: TextSink | None = None) -> Completion:
        """Greedy answer to ``messages``, streamed to ``on_text`` as it arrives."""
        return self._complete(self._body(messages, max_tokens), on_text)

    def constrained(self, messages: list[dict[str, str]], grammar: str, schema: dict[str, Any],
                    max_tokens: int) -> Completion:
        """An answer the server may only write within ``grammar`` (GBNF, llama.cpp servers) or ``schema`` (a JSON
        schema, everywhere else)."""
        body = self._body(messages, max_tokens)
        if self.server in GRAMMAR_KINDS:
            body["grammar"] = grammar
        else:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                                                                              "strict": True}}
        return self._complete(body, None)

    def _body(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}}
        if self.server in GRAMMAR_KINDS:  # llama.cpp's own fields; other servers may refuse unknown ones
            body.update(cache_prompt=True, repeat_penalty=1.0)
        return body

    def _complete(self, body: dict[str, Any], on_text: TextSink | None) -> Completion:
        parts: list[str] = []
        first_at, chunks, stopped, last = 0.0, 0, "length", {}
        done = False
        for payload in self._events(f"{self.api}/chat/completions", body):
            if payload is None:
                done = True
                break
            if payload.get("error"):
                raise _server_error(self.url, 500, _message(payload))
            for choice in payload.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    first_at = first_at or time.monotonic()
                    chunks += 1
                    parts.append(text)
                    if on_text:
                        on_text(text)
                if choice.get("finish_reason"):
                    stopped = "length" if choice["finish_reason"] == "length" else "end"
            if payload.get("usage") or payload.get("timings"):
                last = payload
        if not done and not parts:
            raise self._early_end(body)
        usage = last.get("usage") or {}
        return Completion("".join(parts), int(usage.get("completion_tokens") or chunks),
                          usage.get("prompt_tokens"), cached_tokens(last), first_at, stopped)

    def _early_end(self, body: dict[str, Any]) -> RemoteError:
        """Why a stream ended before its first token. llama-cpp-python's server fails a streamed request inside
        the stream, where its error is lost; asked again unstreamed for one token, it says what went wrong (a
        prompt longer than its context, in its own words)."""
        once = {**{k: v for k, v in body.items() if k != "stream_options"}, "stream": False, "max_tokens": 1}
        # on a new connection: the server resets the one its broken stream was sent on
        self.client.close()
        self.client = httpx.Client(headers=self.client.headers, timeout=self.client.timeout)
        try:
            self._request("POST", f"{self.api}/chat/completions", json=once)
        except RemoteError as exc:
            return exc
        return RemoteError(f"the engine server at {self.url} ended the answer before it began (its log says why)")

    def _events(self, url: str, body: dict[str, Any]) -> Iterator[dict[str, Any] | None]:
        """The JSON payloads of a server-sent event stream; None for its closing [DONE]."""
        try:
            with self.client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _server_error(self.url, response.status_code, _message_of(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # comments (": ping"), event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        yield None
                        return
                    try:
                        yield json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise RemoteError(f"the engine server at {self.url} sent a malformed event: {data[:80]!r}") \
                            from exc
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, exc, self.settings.engine_timeout) from exc

    # --- plain requests -------------------------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise _transport_error(self.url, exc, kwargs.get("timeout", self.settings.engine_timeout)) from exc
        if response.status_code >= 400:
            raise _server_error(self.url, response.status_code, _message_of(response))
        return response

    def _post_json(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", url, json=body).json()

    def _optional(self, method: str, url: str, **kwargs: Any) -> dict[str, Any] | None:
        """An endpoint only some servers have: its JSON, or None when this one lacks it."""
        try:
            response = self._request(method, url, timeout=PROBE_SECONDS, **kwargs)
            data = response.json()
        except (RemoteError, ValueError) as exc:
            if isinstance(exc, (ServerUnavailable, ServerAuthError)):
                raise
            return None
        return data if isinstance(data, dict) else None

    def describe(self) -> dict[str, Any]:
        """For `repochat status`: where the engine is, what it is, and its context."""
        try:
            context: int | str = self.context_limit()
        except RemoteError as exc:
            context = str(exc)
        return {"engine": self.url, "server": self.server, "model": self.model, "context_limit": context}

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _message(payload: dict[str, Any]) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if error:
        return str(error)
    detail = payload.get("detail") if isinstance(payload, dict) else None
    return str(detail if detail is not None else payload)


def _message_of(response: httpx.Response) -> str:
    try:
        return _message(response.json())
    except ValueError:
        return response.text


_CONTEXT_WORDS = ("context length", "context window", "context size", "exceed", "too long", "maximum context")


def _server_error(url: str, status: int, message: str) -> RemoteError:
    message = " ".join(message.split())[:240]
    if status in (401, 403):
        return ServerAuthError(f"the engine server at {url} refused the API key (HTTP {status}): set "
                               "REPOCHAT_API_KEY or OPENAI_API_KEY")
    if any(word in message.lower() for word in _CONTEXT_WORDS):
        return ContextTooLong(f"the prompt does not fit in the engine server's context: {message}")
    return RemoteError(f"the engine server at {url} answered HTTP {status}: {message}")


def _transport_error(url: str, exc: httpx.HTTPError, timeout: float) -> RemoteError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ServerUnavailable(f"the engine server at {url} is not reachable (is it running?)")
    if isinstance(exc, httpx.TimeoutException):
        return ServerTimeout(f"the engine server at {url} sent nothing for {timeout:g}s (engine_timeout)")
    if isinstance(exc, httpx.RemoteProtocolError):
        return RemoteError(f"the engine server at {url} closed the connection mid-answer (a prompt longer than its "
                           "context? its log says why)")
    return RemoteError(f"the engine server at {url} failed: {type(exc).__name__}: {exc}")
