"""The MCP server's stdio transport: the SDK's, plus error replies where the SDK gives none (to lines that are not
JSON-RPC, which it only logs, and to requests whose id is not allowed, which it takes for notifications), and a
stdin of the protocol's own, so that no child process (git) reads a message.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, AsyncIterator, BinaryIO, Iterator

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import ErrorData, JSONRPCError
from mcp_types.jsonrpc import INVALID_REQUEST, PARSE_ERROR
from pydantic import ValidationError

log = logging.getLogger("repochat.live.server")  # the server's log: a refused line is the server's event


async def run_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` on stdin/stdout until stdin closes, replying to what the SDK would leave unanswered.

    MCPServer runs its low-level server only on streams it opens itself (run_stdio_async), so the screened stream
    is handed to ``_lowlevel_server``, the SDK's one internal used here: pyproject pins mcp to the 2.x line, and
    test_server checks that this attribute is still the low-level Server."""
    lowlevel = server._lowlevel_server
    refuse, refusals = anyio.create_memory_object_stream[JSONRPCError](64)
    with _protocol_stdin() as raw_stdin:
        lines = anyio.wrap_file(io.TextIOWrapper(raw_stdin, encoding="utf-8", errors="replace"))
        # stdio_server is typed for an anyio.AsyncFile but only iterates its lines, which the screening generator gives
        async with stdio_server(stdin=_valid_ids(lines, refuse)) as (read_stream, write_stream):  # type: ignore[arg-type]
            forward, screened = anyio.create_memory_object_stream[SessionMessage | Exception](0)

            async def reply(error: JSONRPCError) -> None:
                try:
                    await write_stream.send(SessionMessage(error))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    pass  # the server is shutting down: nobody reads replies any more

            async def screen() -> None:
                async with forward:
                    async for item in read_stream:
                        if isinstance(item, Exception):
                            await reply(_protocol_error(item))
                        else:
                            await forward.send(item)

            async def answer_refusals() -> None:
                async with refusals:
                    async for refusal in refusals:
                        await reply(refusal)

            async with anyio.create_task_group() as group:
                group.start_soon(screen)
                group.start_soon(answer_refusals)
                await lowlevel.run(screened, write_stream, lowlevel.create_initialization_options())
                group.cancel_scope.cancel()


@contextmanager
def _protocol_stdin() -> Iterator[BinaryIO]:
    """The client's stdin for the protocol alone, as the SDK does when it opens stdin itself: the wire is read from a
    private duplicate, and fd 0 points at the null device meanwhile, so that no child process (git) reads a message.
    The duplicate is never closed: a reader thread may still be blocked on it when the server returns."""
    try:
        private = os.dup(0)  # not inheritable: children never get it
        null = os.open(os.devnull, os.O_RDONLY)
    except OSError:  # no usable fd 0: read what Python has
        yield sys.stdin.buffer
        return
    os.dup2(null, 0)
    os.close(null)
    try:
        yield os.fdopen(private, "rb", closefd=False)
    finally:
        os.dup2(private, 0)


async def _valid_ids(lines: AsyncIterator[str], refuse: MemoryObjectSendStream[JSONRPCError]) -> AsyncIterator[str]:
    """The lines of stdin, less the requests whose id is not allowed; each of those gets an Invalid Request reply."""
    async with refuse:
        async for line in lines:
            refusal = _invalid_id(line)
            if refusal is None:
                yield line
            else:
                await refuse.send(refusal)


def _invalid_id(line: str) -> JSONRPCError | None:
    """The error reply to a request whose id MCP does not allow, else None.

    JSON-RPC 2.0 allows a string, a number or null; MCP narrows it to a string or an integer, never null. The SDK
    reads a request with any other id (an object, a list, a fraction, true, null) as a notification and never
    answers, so the client waits forever. As JSON-RPC requires for an Invalid Request, the reply's id is null."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None  # not JSON (or nested too deep for us): the SDK replies with a parse error
    if not isinstance(message, dict) or "id" not in message or "method" not in message:
        return None
    request_id = message["id"]
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return None
    text = f"invalid request: the id must be a string or an integer, not {_JSON_KINDS.get(type(request_id), 'that')}"
    log.warning("%s", text)
    return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=text))


_JSON_KINDS = {dict: "an object", list: "an array", float: "a fraction", bool: "a boolean", type(None): "null"}


def _protocol_error(exc: Exception) -> JSONRPCError:
    not_json = isinstance(exc, ValidationError) and any(e["type"] == "json_invalid" for e in exc.errors())
    code, message = (PARSE_ERROR, "parse error: not JSON") if not_json else \
        (INVALID_REQUEST, "invalid request: not a JSON-RPC 2.0 message")
    log.warning("%s", message)
    return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))
