"""`repochat status` (the index, what was skipped, the plan for asking) and `repochat models` (installed models).

Registered on the `cli` group by repochat/cli/main.py.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from .common import emit_json, engine_option, handle_errors, index_options, json_option, out, repo_option, settings_for


@click.command()
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


@click.command()
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
