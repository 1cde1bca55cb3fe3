"""The `repochat` command line: a thin layer over the library. Every command takes --json."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from .common import (emit_json, engine_option, handle_errors, index_options, json_option, model_options, out, repo_option,
                         settings_for)
from .review import hook, review
from .serve import serve, watch
from .progress import progress_reporter


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repochat")
def cli() -> None:
    """Ask questions about a whole repository with a local model, offline."""


@cli.command()
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


@cli.command()
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


@cli.command()
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


@cli.command("map")
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


@cli.command()
@index_options
@engine_option
@repo_option
@json_option
@handle_errors()
def status(repo: Path | None, as_json: bool, **options: Any) -> None:
    """What is indexed, what was skipped and why, and the plan for asking (whole repository or retrieval)."""
    from ..answer.status import repository_status

    root, settings = settings_for(repo, **options)
    report = repository_status(root, settings)
    if as_json:
        emit_json(report)
        return
    for section, values in report.items():
        out.print(f"[bold]{section}[/]")
        for key, value in (values.items() if isinstance(values, dict) else [("", values)]):
            out.print(f"  {key}: {value}" if key else f"  {value}")
        if section == "plan" and isinstance(values, dict) and "kv_disk_bytes" in values:
            for line in _kv_cached_lines(values):
                out.print(f"  {line}", markup=False)


def _kv_cached_lines(plan: dict[str, Any]) -> list[str]:
    """How much of the repository's KV is on disk (its files' pieces, or in retrieval its chunks' as excerpts),
    and what all of it takes there."""
    lines = []
    if "tokens_cached" in plan:
        lines.append(f"KV cached: {_share(plan['tokens_cached'], plan['repo_tokens'])} of the repository "
                     f"({plan['tokens_cached']:,} of {plan['repo_tokens']:,} tokens, {plan['pages_cached']} of "
                     f"{plan['pages']} {plan['kv_unit']}s)")
    if "kv_excerpts" in plan:
        lines.append(f"KV cached for retrieval: {_share(plan['kv_excerpt_tokens_cached'], plan['kv_excerpt_tokens'])}"
                     f" of the index's excerpts ({plan['kv_excerpts_cached']} of {plan['kv_excerpts']} pieces)")
    return lines + [f"KV of the whole repository: ~{_size(plan['kv_disk_bytes'])} on disk"]


def _share(part: int, whole: int) -> str:
    return f"{part * 100 // max(whole, 1)}%"


def _size(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / 1024**2:.0f} MB"


@cli.command()
@click.argument("question")
@click.option("--effort", type=click.Choice(["low", "auto", "high"]), default="auto", show_default=True,
              help="low: retrieval with a small context; auto: a lookup from the index, else what the model answers "
                   "best with within ~30 s of prefill; high: whole repository (or the largest budget).")
@click.option("--max-tokens", "max_answer_tokens", type=int, help="Longest answer, in tokens.")
@index_options
@model_options
@engine_option
@repo_option
@json_option
@handle_errors()
def ask(question: str, effort: str, repo: Path | None, as_json: bool, **options: Any) -> None:
    """Answer QUESTION about the repository, with citations (path:start-end), definitions it names and coverage."""
    from ..answer.ask import ask as run_ask

    root, settings = settings_for(repo, **options)
    with progress_reporter(not as_json) as report:
        def stream(text: str) -> None:
            report.finish()  # the bars go before the answer starts, else clearing them would erase it
            _stream(text)

        result = run_ask(root, question, settings, effort=effort, on_progress=report,
                         on_text=None if as_json else stream)
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo()
    _print_citations(result.citations)
    _print_references(result.references)
    _print_coverage(result.coverage)


def _stream(text: str) -> None:
    click.echo(text, nl=False)
    sys.stdout.flush()


def _print_citations(citations: list[dict[str, Any]]) -> None:
    if not citations:
        return
    shown = [f"{c['path']}:{c['start']}-{c['end']}" + ("" if c["valid"] else " (not in context)") for c in citations]
    out.print("[dim]citations:[/] " + ", ".join(shown), markup=True)


def _print_references(references: list[dict[str, Any]]) -> None:
    if references:
        shown = [f"{r['path']}:{r['start']}-{r['end']} ({r['symbol']})" for r in references]
        out.print("[dim]defined at:[/] " + ", ".join(shown), markup=True)


def _print_coverage(coverage: dict[str, Any]) -> None:
    if coverage["mode"] == "lookup":  # no model ran: the tokens and the cache are beside the point
        out.print(f"[dim]{coverage['plan']} in {coverage['total_s']:.2f}s[/]")
        return
    if coverage.get("engine"):
        _print_remote_coverage(coverage)
        return
    files = (f"{coverage['files_in_context']} files in context" if coverage["mode"] == "whole"
             else f"{coverage['files_retrieved']} files retrieved")
    if coverage.get("files_appended"):
        files += f" ({coverage['files_appended']} changed since laid out, appended)"
    out.print(f"[dim]{coverage['mode']} mode: {files}, {coverage['files_left_out']} left out, "
              f"{coverage['context_tokens']:,} tokens, cache {coverage['cache']} "
              f"({coverage['restored_tokens']:,} restored, {coverage['prefilled_tokens']:,} prefilled), "
              f"first token {coverage['ttft_s']:.1f}s, total {coverage['total_s']:.1f}s[/]")
    for notice in coverage.get("notices", []):
        out.print(f"[yellow]{notice}[/]")


def _print_remote_coverage(coverage: dict[str, Any]) -> None:
    """A server's coverage line: what it was sent and what it says it took from its prefix cache."""
    files = (f"{coverage['files_in_context']} files in context" if coverage["mode"] == "whole"
             else f"{coverage['files_retrieved']} files retrieved")
    cached = coverage["server_cached_tokens"]
    cache = "not reported by the server" if cached is None else f"{coverage['cache']} ({cached:,} tokens cached)"
    out.print(f"[dim]{coverage['mode']} mode on {coverage['engine']} ({coverage['server']}): {files}, "
              f"{coverage['files_left_out']} left out, {coverage['prompt_tokens']:,} prompt tokens, server cache "
              f"{cache}, first token {coverage['ttft_s']:.1f}s, total {coverage['total_s']:.1f}s[/]", markup=True)


@cli.command()
@click.option("--model", help="Also list this GGUF file (a path); a name lists nothing more.")
@repo_option
@json_option
@handle_errors()
def models(repo: Path | None, as_json: bool, **options: Any) -> None:
    """Installed models: name, size, context limit and licence."""
    from ..engine.models import list_models

    from ..answer.status import engine_status

    _root, settings = settings_for(repo, **options)
    found = list_models(settings)
    engine = engine_status(settings)
    if as_json:
        emit_json({"models": [{**asdict(m), "path": str(m.path) if m.path else None} for m in found], **engine})
        return
    for m in found:
        state = "installed" if m.installed else "not installed"
        out.print(f"{m.name:14s} {state:14s} {m.size_bytes / 1e6:8.0f} MB  ctx {m.context_length:>9,}  {m.license}")
    out.print(f"CPU path: {engine['cpu_path']} (cpu_extra_buffers = {engine['cpu_extra_buffers']})", markup=False)



for _command in (review, hook, serve, watch):  # defined in their own modules
    cli.add_command(_command)


def main() -> None:
    from .crashguard import enable_crash_log, run_guarded, should_guard

    argv = sys.argv[1:]
    if should_guard(argv):
        sys.exit(run_guarded(argv))
    enable_crash_log()
    cli()
