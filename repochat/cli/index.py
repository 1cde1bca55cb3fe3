"""`repochat index`, `search`, `symbols` and `map`: building the index and querying it without the model.

Registered on the `cli` group by repochat/cli/main.py.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from .common import emit_json, handle_errors, index_options, json_option, model_options, out, repo_option, settings_for
from .progress import progress_reporter


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Drop the existing index and build it again.")
@click.option("--no-embed", is_flag=True, help="Skip vectors (full-text search only; hybrid fills them in later).")
@click.option("--max-file-size", help="Skip files larger than this (e.g. 1MB).")
@click.option("--kv/--no-kv", default=None,
              help="Then compute the KV pieces that asks assemble, most central files first (Ctrl-C keeps those "
                   "done). Default: the index_kv setting (auto: when the repository's KV fits kv_cache_size).")
@index_options
@model_options
@json_option
@handle_errors()
def index(path: Path | None, rebuild: bool, no_embed: bool, max_file_size: str | None, kv: bool | None,
          as_json: bool, **options: Any) -> None:
    """Index PATH (default: the current repository): chunks, symbols, full-text index, vectors, then KV pieces."""
    from ..index.indexer import embed_pending, update_index
    from ..live.kv_refresh import warm_after_index

    root, settings = settings_for(path, max_file_size=max_file_size, embeddings=False if no_embed else None,
                                  index_kv=None if kv is None else ("on" if kv else "off"), **options)
    with progress_reporter(not as_json) as report:
        summary = update_index(root, settings, report, rebuild=rebuild)
        if not as_json:
            _print_index_summary(summary)
        if settings.embeddings and summary.vectors_pending:
            from ..index.store import IndexStore
            summary.embedded = embed_pending(IndexStore.open(settings.index_path(root), pinned=False), settings, report)
            summary.vectors_pending -= summary.embedded
            if not as_json:
                out.print(f"embedded {summary.embedded} chunks")
        warmed = warm_after_index(root, settings, report)
    if as_json:
        emit_json({**asdict(summary), "kv": warmed.as_dict()})
    elif settings.index_kv != "off":
        _print_warm(warmed)


def shown(path: str) -> str:
    """A path on one line: a newline or other control character in a file name is shown escaped."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


def _print_warm(warmed: Any) -> None:
    if warmed.skipped:
        out.print(f"KV {warmed.kv_unit}s: not computed ({warmed.skipped})", markup=False)
        return
    out.print(f"KV {warmed.kv_unit}s ({warmed.mode} mode): {warmed.computed} computed, {warmed.cached} already "
              f"cached, of {warmed.pieces} ({warmed.tokens:,} tokens, {warmed.computed_tokens:,} computed) in "
              f"{warmed.seconds:.1f}s", markup=False)
    for notice in warmed.notices:
        out.print(f"[yellow]{escape(notice)}[/]")


def _print_index_summary(summary: Any) -> None:
    if summary.notice:
        out.print(f"[yellow]{summary.notice}[/]")
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped.items())) or "none"
    out.print(f"indexed {summary.root}: {summary.files} files ({summary.parsed} parsed, {summary.unchanged} "
              f"unchanged, {summary.deleted} removed), {summary.chunks} chunks, {summary.symbols} symbols "
              f"in {summary.seconds:.2f}s; skipped: {skipped}")


@click.command()
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, help="Number of results.")
@click.option("--mode", type=click.Choice(["hybrid", "fts", "vector"]), default="hybrid", show_default=True,
              help="hybrid: full-text and vector rankings merged; fts: full-text only; vector: embeddings only.")
@click.option("--path", "path_glob", help="Only paths matching this glob (e.g. 'src/**/*.py').")
@click.option("--lang", "language", help="Only this language (e.g. python).")
@click.option("--files", "by_file", is_flag=True, help="Rank files, not chunks (which files is this about?).")
@index_options
@repo_option
@json_option
@handle_errors()
def search(query: str, k: int, mode: str, path_glob: str | None, language: str | None, by_file: bool,
           repo: Path | None, as_json: bool, **options: Any) -> None:
    """Search the index: ranked chunks with path:line (or, with --files, ranked files)."""
    from ..index.store import IndexStore
    from ..retrieve.search import cut_notice
    from ..retrieve.search import search as run_search

    root, settings = settings_for(repo, **options)
    notice = cut_notice(query)
    if notice:
        click.echo(f"notice: {notice}", err=True)
    if by_file:
        _search_files(IndexStore.open(settings.index_path(root)), query, k, mode, path_glob, language,
                      settings.embedding_model, as_json)
        return
    hits = run_search(IndexStore.open(settings.index_path(root)), query, k=k, mode=mode, path_glob=path_glob,
                      language=language, embedding_model=settings.embedding_model)
    if as_json:
        emit_json({"query": query, "mode": mode, "results": [asdict(h) for h in hits]})
        return
    for rank, hit in enumerate(hits, 1):
        out.print(f"[bold]{rank:2d}. {escape(shown(hit.location()))}[/]  {hit.kind} {escape(hit.symbol)}  "
                  f"[dim]{hit.score:.4f}[/]")
        for line in hit.text.splitlines()[:3]:
            out.print(f"      {line[:120]}", markup=False)
    if not hits:
        out.print("no results")


def _search_files(store: Any, query: str, k: int, mode: str, path_glob: str | None, language: str | None,
                  embedding_model: str, as_json: bool) -> None:
    from ..retrieve.files import rank_files

    hits = rank_files(store, query, k=k, mode=mode, path_glob=path_glob, language=language,
                      embedding_model=embedding_model)
    if as_json:
        emit_json({"query": query, "mode": mode, "files": [asdict(h) for h in hits]})
        return
    for rank, hit in enumerate(hits, 1):
        out.print(f"[bold]{rank:2d}. {escape(shown(hit.path))}[/]  [dim]{hit.score:.4f}[/]  "
                  f"{escape(shown(hit.location()))} {escape(hit.symbol)}")
    if not hits:
        out.print("no results")


@click.command()
@click.argument("name")
@click.option("--defs", "role", flag_value="definition", help="Definitions only.")
@click.option("--refs", "role", flag_value="reference", help="References only.")
@repo_option
@json_option
@handle_errors()
def symbols(name: str, role: str | None, repo: Path | None, as_json: bool) -> None:
    """Definitions of NAME and references to it (with the definition each reference is in)."""
    from ..index.store import IndexStore
    from ..retrieve.symbols import find_symbols

    root, settings = settings_for(repo)
    hits = find_symbols(IndexStore.open(settings.index_path(root)), name, role)
    if as_json:
        emit_json({"name": name, "definitions": [asdict(h) for h in hits if h.role == "definition"],
                   "references": [asdict(h) for h in hits if h.role == "reference"]})
        return
    for hit in hits:
        where = f" in {hit.scope}" if hit.scope and hit.role == "reference" else ""
        out.print(f"{hit.role[:3]}  {shown(hit.location())}  {hit.kind} {hit.name}{where}", markup=False)
    if not hits:
        out.print(f"no symbol named {name!r}")


@click.command("map")
@click.option("--tokens", default=1024, show_default=True, help="Token budget for the map.")
@click.option("--focus", multiple=True, help="Bias the ranking towards these files (repeatable).")
@repo_option
@json_option
@handle_errors()
def repo_map(tokens: int, focus: tuple[str, ...], repo: Path | None, as_json: bool) -> None:
    """A map of the most important definitions, ranked by the reference graph, within --tokens."""
    from ..index.store import IndexStore
    from ..retrieve.repomap import rank_definitions, render_map

    root, settings = settings_for(repo)
    entries = rank_definitions(IndexStore.open(settings.index_path(root)), focus_paths=set(focus))
    text, used = render_map(entries, tokens)
    if as_json:
        emit_json({"tokens": used, "budget": tokens, "map": text})
    else:
        click.echo(text)
