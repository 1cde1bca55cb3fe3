"""`repochat serve`: the repository's index, symbols, map and model as MCP tools over stdio.

Editors and coding agents start this as a subprocess and speak JSON-RPC to it. Stdout carries protocol messages only
(the SDK moves file descriptor 1 aside, so even C libraries printing there end up on stderr); logs go to stderr. The
transport, with the error replies the SDK does not give, is stdio.py's.

Requests that use the model (ask, review_diff) run one at a time in arrival order on one loaded engine, whose KV pages
stay in memory between requests; an MCP cancellation takes a request out of the queue or stops it at the next page
or token (see model_queue). Index queries run concurrently with each other, but never during an index update (see
watch.IndexGate). After an index update, the KV pieces of what changed are computed in the background on the loaded
engine; a request never waits for that longer than one piece, or one batch of a piece computed alone (see
kv_refresh).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult
from mcp_types.jsonrpc import INVALID_PARAMS
from pydantic import Field

from ..callbacks import Progress
from ..config import Settings
from ..errors import RepochatError
from ..index.indexer import update_index
from .kv_refresh import KvRefresher
from .model_queue import CancelToken, ModelQueue, RequestCancelled, close_engine_when_stopped
from .stdio import run_stdio
from .tools import ServerTools
from .watch import IndexGate, IndexWatcher

log = logging.getLogger("repochat.live.server")
T = TypeVar("T")
FILE_URI = "repo://files/{+path}"
# How long shutdown waits for a running decode to reach its next page or token and stop. The engine is freed only
# after that (freeing llama.cpp's context under a decode crashes the process); past this, the process exits with the
# engine still allocated, which the OS reclaims.
ENGINE_STOP_WAIT_S = 60.0


class RepochatMCP(MCPServer[Any]):
    """MCPServer with the repository's files as a dynamic resource list and protocol errors for unknown tools."""

    def __init__(self, tools: ServerTools) -> None:
        super().__init__("repochat", instructions=INSTRUCTIONS, log_level="WARNING")
        self.repo = tools

    async def list_resources(self) -> list[Any]:
        from mcp_types import Resource

        paths = await anyio.to_thread.run_sync(self.repo.list_files)
        return [Resource(uri=f"repo://files/{path}", name=path, mime_type="text/plain") for path in paths]

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None) -> CallToolResult | Any:
        names = [tool.name for tool in await self.list_tools()]
        if name not in names:
            raise MCPError(code=INVALID_PARAMS, message=f"unknown tool {name!r}", data={"tools": names})
        return await super().call_tool(name, arguments, context)


INSTRUCTIONS = ("repochat answers questions about one source repository with a local model, offline. Use search_code, "
                "find_symbol, find_references and repo_map to locate code quickly; ask for an answer with citations "
                "(slower: it runs the model); review_diff to review a change. Paths are relative to the repository "
                "root; files are readable as resources repo://files/<path>.")


async def _in_thread(gate: IndexGate, call: Callable[[], T]) -> T:
    """Run an index query in a worker thread, inside the gate, turning repochat errors into tool errors."""
    def guarded() -> T:
        with gate.read():
            return call()
    try:
        return await anyio.to_thread.run_sync(guarded)
    except RepochatError as exc:
        raise ToolError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a bug or a library's error fails this call, never the server
        raise _unexpected(exc) from exc


def _unexpected(exc: Exception) -> ToolError:
    """A tool error of one line for an exception repochat did not expect; the traceback goes to the log."""
    log.error("tool failed", exc_info=exc)
    lines = str(exc).strip().splitlines()
    detail = f": {lines[0][:300]}" if lines else ""
    return ToolError(f"internal error ({type(exc).__name__}{detail}); the server's log (stderr) has the details")


def _progress_sender(ctx: Context[Any, Any], token: CancelToken) -> Progress:
    """A (stage, done, total) callback for the worker thread: checks for cancellation and notifies the client."""
    step = 0

    def report(stage: str, done: int, total: int) -> None:
        nonlocal step
        token.check()
        step += 1  # MCP wants progress to grow with every notification; stages restart their own counts
        try:
            anyio.from_thread.run(ctx.report_progress, step, None, f"{stage} {done}/{total}")
        except Exception as exc:  # noqa: BLE001 - a client gone deaf must not stop the work
            log.debug("progress not sent: %s", exc)
    return report


def build_server(tools: ServerTools, gate: IndexGate, queue: ModelQueue) -> RepochatMCP:
    server = RepochatMCP(tools)

    @server.tool(description="Search the repository's code and text: hybrid full-text + vector ranking. Returns the "
                             "best chunks with path, line range, symbol and text.")
    async def search_code(
        query: Annotated[str, Field(description="What to look for: words, identifiers or a natural-language phrase.")],
        k: Annotated[int, Field(ge=1, le=100, description="Number of results.")] = 10,
        mode: Annotated[Literal["hybrid", "fts", "vector"], Field(description="Ranking method.")] = "hybrid",
        path: Annotated[str | None, Field(description="Only paths matching this glob, relative to the repository "
                                                      "root (e.g. 'src/**/*.py').")] = None,
        language: Annotated[str | None, Field(description="Only this language (e.g. 'python').")] = None,
    ) -> dict[str, Any]:
        return await _in_thread(gate, lambda: tools.search_code(query, k, mode, path, language))

    @server.tool(description="Where a name is defined: definitions of a function, class, method, variable... "
                             "'Class.method' narrows to the method of that class.")
    async def find_symbol(name: Annotated[str, Field(description="Symbol name, e.g. 'parse' or 'Queue.put'.")]
                          ) -> dict[str, Any]:
        return await _in_thread(gate, lambda: tools.find_symbol(name))

    @server.tool(description="Where a name is used: references to it, each with the enclosing definition (caller).")
    async def find_references(name: Annotated[str, Field(description="Symbol name, e.g. 'parse'.")]
                              ) -> dict[str, Any]:
        return await _in_thread(gate, lambda: tools.find_references(name))

    @server.tool(description="A map of the repository's most important definitions (ranked by how much the rest of "
                             "the code refers to them), fitted to a token budget.")
    async def repo_map(
        tokens: Annotated[int, Field(ge=64, le=32768, description="Token budget for the map.")] = 1024,
        focus: Annotated[list[str] | None, Field(description="Files to rank higher (paths relative to the "
                                                             "repository root).")] = None,
    ) -> dict[str, Any]:
        return await _in_thread(gate, lambda: tools.repo_map(tokens, focus or []))

    @server.tool(description="The state of the index (files, chunks, symbols, vectors, what was skipped and why), "
                             "the live updates, and the plan for asking (whole repository in context or retrieval).")
    async def index_status() -> dict[str, Any]:
        return await _in_thread(gate, tools.index_status)

    @server.tool(description="Answer a question about the repository with the local model: the answer, citations "
                             "(path:line, checked against the files), references (where the code the answer names "
                             "is defined) and coverage (what was in context, KV cache hit or miss). Sends progress "
                             "while the context is prefilled. Slow on CPU.")
    async def ask(
        question: Annotated[str, Field(description="The question, in any language.")],
        effort: Annotated[Literal["auto", "low", "high"], Field(description="auto: whole repository when it fits; "
                                                                "low: retrieval only; high: as much context as "
                                                                "memory allows.")] = "auto",
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        def job(token: CancelToken) -> dict[str, Any]:
            progress = _progress_sender(ctx, token) if ctx is not None else None
            return tools.ask(question, effort, progress, token.check)
        return await _model_call(queue, job)

    @server.tool(description="Review a change with the repository as context (touched definitions, their callers "
                             "and callees): findings with severity, path:line, message and suggestion. Reviews the "
                             "staged changes by default.")
    async def review_diff(
        target: Annotated[str, Field(description="'staged' (default), 'worktree' (all uncommitted changes), or a "
                                                 "revision range: 'A..B', 'A...B' or one commit, or the text of a unified diff "
                                                 "against HEAD (as `git diff` prints it).")] = "staged",
        ctx: Context[Any, Any] | None = None,
    ) -> dict[str, Any]:
        def job(token: CancelToken) -> dict[str, Any]:
            progress = _progress_sender(ctx, token) if ctx is not None else None
            return tools.review_diff(target, progress)
        return await _model_call(queue, job)

    @server.resource(FILE_URI, name="file", description="A file of the repository (text files that may be indexed "
                                                        "only: secrets, binaries and ignored files are refused).",
                     mime_type="text/plain")
    async def read_file(path: str) -> str:
        try:
            return await anyio.to_thread.run_sync(tools.read_file, path)
        except RepochatError as exc:
            raise ResourceError(str(exc)) from exc

    return server


async def _model_call(queue: ModelQueue, job: Callable[[CancelToken], T]) -> T:
    try:
        return await queue.run(job)
    except RequestCancelled as exc:
        log.info("model request cancelled by the client")
        raise ToolError("cancelled") from exc
    except anyio.get_cancelled_exc_class():
        log.info("model request cancelled by the client")
        raise
    except RepochatError as exc:
        raise ToolError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - see _in_thread
        raise _unexpected(exc) from exc


def serve_stdio(root: Path, settings: Settings, live: bool = True) -> None:
    """Serve MCP on stdin/stdout until stdin closes. ``live``: follow file changes and keep the index current."""
    _log_to_stderr()
    gate = IndexGate()
    queue = ModelQueue()
    # The refresh uses the engine only once an ask has loaded it (``tools`` is bound below, before it starts).
    refresher = KvRefresher(root, settings, lambda: tools.loaded_engine(), queue.turns) if live else None
    watcher = IndexWatcher(root, settings, gate, on_update=refresher.request if refresher else None) if live else None
    updater = _update_once_then_open(root, settings, gate) if watcher is None else None
    tools = ServerTools(root, settings, gate, watcher, refresher)
    server = build_server(tools, gate, queue)
    if watcher is not None and refresher is not None:
        refresher.start()
        watcher.start()
    try:
        anyio.run(run_stdio, server)
    finally:
        queue.cancel_all()  # a request still running stops at its next page or token ...
        if refresher is not None:
            refresher.stop(timeout=0)  # ... and so does a refresh (close_engine_when_stopped waits for both)
        if watcher is not None:
            watcher.stop(timeout=5)
        if updater is not None:
            updater.join()  # exiting while it writes in native code (LanceDB) aborts the process
        if not close_engine_when_stopped(queue.turns, tools.close, ENGINE_STOP_WAIT_S):
            log.warning("a decode did not stop within %.0fs; exiting without freeing the model", ENGINE_STOP_WAIT_S)


def _update_once_then_open(root: Path, settings: Settings, gate: IndexGate) -> threading.Thread | None:
    """Without a watcher (--no-watch) the index is still brought up to date once, in the background as a watcher's
    first update is; queries wait for it (the gate opens after it, whether it worked or not). A read-only index is
    only read."""
    if settings.index_read_only:
        gate.open()
        return None

    def update() -> None:
        try:
            with gate.write():
                summary = update_index(root, settings, on_wait=log.info)
            log.info("index updated: %d parsed, %d removed in %.2fs", summary.parsed, summary.deleted, summary.seconds)
        except RepochatError as exc:
            log.error("index update failed: %s", exc)
        except Exception:  # noqa: BLE001 - the index as it was still serves; the log has the details
            log.exception("index update failed")
        finally:
            gate.open()

    thread = threading.Thread(target=update, name="repochat-index-once", daemon=True)
    thread.start()
    return thread


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("repochat %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("repochat")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
