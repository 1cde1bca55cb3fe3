"""`repochat serve` (MCP over stdio for editors and agents) and `repochat watch` (keep the index live).

Registered on the `cli` group in cli/main.py: ``cli.add_command(serve)`` and ``cli.add_command(watch)``.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import (engine_option, handle_errors, index_options, json_option, model_options, repo_option,
                         settings_for)

if TYPE_CHECKING:
    from ..index.indexer import IndexSummary
    from ..live.kv_refresh import KvRefresher, RefreshState
    from ..live.watch import IndexWatcher


@click.command()
@click.option("--stdio", is_flag=True, expose_value=False,
              help="MCP (JSON-RPC) on stdin/stdout: the only transport, so the flag changes nothing; editor "
                   "configurations may name it.")
@click.option("--no-watch", is_flag=True, help="Do not follow file changes (the index is updated once at start).")
@click.option("--no-embed", is_flag=True, help="Skip vectors (full-text search only).")
@index_options
@model_options
@engine_option
@repo_option
@handle_errors()
def serve(no_watch: bool, no_embed: bool, repo: Path | None, **options: str | bool | None) -> None:
    """Serve the repository to an editor or coding agent over MCP (stdio).

    Tools: search_code, ask, review_diff, find_symbol, find_references, repo_map, index_status; files are
    resources (repo://files/<path>). Logs go to stderr; stdout carries protocol messages only.
    """
    from ..live.server import serve_stdio

    root, settings = settings_for(repo, embeddings=False if no_embed else None, **options)
    serve_stdio(root, settings, live=not no_watch and not settings.index_read_only)  # read-only: nothing to follow


@click.command()
@click.option("--debounce", default=0.4, show_default=True, type=float,
              help="Seconds of quiet after the last change before the index is updated.")
@click.option("--no-embed", is_flag=True, help="Skip vectors (full-text search only).")
@click.option("--warm-kv", is_flag=True,
              help="Also keep the KV that asks assemble ready: loads the model and computes the pieces of changed "
                   "files (or chunks, in retrieval mode, as index_kv says) after each update, so that the next "
                   "`repochat ask` restores them instead.")
@repo_option
@json_option
@handle_errors()
def watch(debounce: float, no_embed: bool, warm_kv: bool, repo: Path | None, as_json: bool) -> None:
    """Keep the index up to date while files change (Ctrl-C to stop).

    Changes are debounced and coalesced: a branch switch or a formatter run is one update. Prints one line per
    update (one JSON object per line with --json), and with --warm-kv one per refresh of the KV pieces.
    """
    from ..engine.lazy import LazyEngine
    from ..live.kv_refresh import KvRefresher
    from .progress import progress_reporter
    from ..live.watch import IndexWatcher

    root, settings = settings_for(repo, embeddings=False if no_embed else None)
    with progress_reporter(warm_kv and not as_json) as progress, LazyEngine(settings, progress) as engine:
        refresher = KvRefresher(root, settings, engine.get, on_progress=progress,
                                on_done=lambda state: _report_refresh(state, as_json)) if warm_kv else None

        def updated(summary: IndexSummary) -> None:
            _report(summary, as_json)
            if refresher is not None:
                refresher.request()

        watcher = IndexWatcher(root, settings, debounce=debounce, on_update=updated)
        if not as_json:
            click.echo(f"watching {root} (Ctrl-C to stop)", err=True)
        _run_until_stopped(watcher, refresher)


def _run_until_stopped(watcher: IndexWatcher, refresher: KvRefresher | None) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    if refresher is not None:
        refresher.start()
    watcher.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if refresher is not None:
            refresher.stop()  # before the engine closes
        watcher.stop()


def _report(summary: IndexSummary, as_json: bool) -> None:
    if as_json:  # one object per line: a stream a script can follow
        click.echo(json.dumps(asdict(summary), ensure_ascii=False, default=str))
        return
    click.echo(f"updated: {summary.parsed} parsed, {summary.deleted} removed, {summary.chunks} chunks, "
               f"{summary.symbols} symbols in {summary.seconds:.2f}s")


def _report_refresh(state: RefreshState, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"kv_refresh": state.last, "skipped": state.skipped or None}, ensure_ascii=False))
    elif state.skipped:
        click.echo(f"kv: nothing to prepare ({state.skipped})")
    elif state.last:
        last = state.last
        click.echo(f"kv {last['kv_unit']}s ({last['mode']} mode): {last['pieces_computed']} computed, "
                   f"{last['pieces_cached']} already cached, in {last['seconds']:.1f}s")
    elif state.last:
        last = state.last
        click.echo(f"kv pages ready: {last['pages']} pages, {last['pages_prefilled']} prefilled "
                   f"({last['prefilled_tokens']} tokens) in {last['seconds']:.2f}s")
