"""`repochat ask`: an answer streamed to the terminal, then its citations, references and coverage line.

Registered on the `cli` group by repochat/cli/main.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import (emit_json, engine_option, handle_errors, index_options, json_option, model_options, out,
                     repo_option, settings_for)
from .progress import progress_reporter


@click.command()
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
              f"{_first_words(coverage)}, total {coverage['total_s']:.1f}s[/]")
    for notice in coverage.get("notices", []):
        out.print(f"[yellow]{notice}[/]")


def _first_words(coverage: dict[str, Any]) -> str:
    """When the answer started; an answer that starts with the index's pick says when the model's words did."""
    first = f"first token {coverage['ttft_s']:.1f}s"
    model = coverage.get("model_ttft_s", coverage["ttft_s"])
    return first if model - coverage["ttft_s"] < 0.05 else f"{first} (the model's {model:.1f}s)"


def _print_remote_coverage(coverage: dict[str, Any]) -> None:
    """A server's coverage line: what it was sent and what it says it took from its prefix cache."""
    files = (f"{coverage['files_in_context']} files in context" if coverage["mode"] == "whole"
             else f"{coverage['files_retrieved']} files retrieved")
    cached = coverage["server_cached_tokens"]
    cache = "not reported by the server" if cached is None else f"{coverage['cache']} ({cached:,} tokens cached)"
    out.print(f"[dim]{coverage['mode']} mode on {coverage['engine']} ({coverage['server']}): {files}, "
              f"{coverage['files_left_out']} left out, {coverage['prompt_tokens']:,} prompt tokens, server cache "
              f"{cache}, first token {coverage['ttft_s']:.1f}s, total {coverage['total_s']:.1f}s[/]", markup=True)
