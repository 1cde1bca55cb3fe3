"""`repochat review` and `repochat hook install|uninstall`, registered on the `cli` group by repochat/cli/main.py.

Exit codes of `review`: 0 nothing reaches --fail-on, 1 something does, 2 the review could not run (a bad range, not
a repository; or, with --strict, no model or no index).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import click

from .common import (emit_json, engine_option, handle_errors, json_option, model_options, out, repo_option,
                         settings_for)
from ..review.diff import STAGED, WORKTREE, commit_from_patch
from ..review.report import (EXIT_NOT_RUN, FAIL_LEVELS, ReviewReport, check_fail_on, exit_code, text_lines,
                            to_sarif)


def _version() -> str:
    try:
        return version("repochat")
    except PackageNotFoundError:
        return "0"


@click.command()
@click.option("--staged", "target", flag_value=STAGED, default=True, help="Review the staged changes (default).")
@click.option("--worktree", "target", flag_value=WORKTREE, help="Review all uncommitted changes in the work tree.")
@click.option("--range", "revision_range", metavar="A..B", help="Review a range of commits (A..B, A...B or one commit).")
@click.option("--patch", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Review a unified diff against HEAD from FILE ('-' for stdin), without applying it.")
@click.option("--sarif", is_flag=True, help="Print SARIF 2.1.0 (for code-scanning tools and editors).")
@click.option("--fail-on", type=click.Choice(FAIL_LEVELS), default=None,
              help="Lowest severity that fails the review (default: setting fail_on, else error).")
@click.option("--strict", is_flag=True, help="Fail (exit 2) when the model or the index is unavailable.")
@click.option("--effort", type=click.Choice(["low", "auto", "high"]), default="auto", show_default=True,
              help="low: the change and its neighbours only; auto: after the whole repository (its cached KV pages) "
                   "when few tokens need prefilling (review_whole_max_prefill); high: whole repository when it fits.")
@model_options
@engine_option
@repo_option
@json_option
@handle_errors(exit_code=EXIT_NOT_RUN)
def review(target: str, revision_range: str | None, patch: TextIO | None, sarif: bool, fail_on: str | None,
           strict: bool, effort: str, repo: Path | None, as_json: bool, **options: Any) -> None:
    """Review a change with the repository as context: findings with severity, path:line and a suggestion."""
    from .progress import progress_reporter
    from ..review.run import review as run_review

    root, settings = settings_for(repo, fail_on=fail_on, **options)
    threshold = check_fail_on(settings.fail_on)
    if patch is not None:
        revision_range = commit_from_patch(root, patch.read())
    with progress_reporter(not (as_json or sarif)) as report_progress:
        report = run_review(root, settings, revision_range or target, on_progress=report_progress, effort=effort)
    _print_report(report, threshold, root, as_json, sarif)
    sys.exit(exit_code(report, threshold, strict))


def _print_report(report: ReviewReport, threshold: str, root: Path, as_json: bool, sarif: bool) -> None:
    if sarif:
        click.echo(json.dumps(to_sarif(report, _version(), root), indent=2, ensure_ascii=False))
    elif as_json:
        emit_json({**report.as_dict(), "fail_on": threshold})
    else:
        for style, line in text_lines(report, threshold):
            out.print(line, style=style, markup=False)
    if (sarif or as_json) and not report.ran:
        click.echo(f"repochat review: skipped: {report.notice}", err=True)


@click.group()
def hook() -> None:
    """Install or remove the git pre-commit hook that runs `repochat review --staged`."""


@hook.command("install")
@click.option("--strict", is_flag=True, help="Block commits when the model or the index is unavailable.")
@click.option("--fail-on", type=click.Choice(FAIL_LEVELS), default=None, help="Severity that blocks a commit.")
@repo_option
@handle_errors()
def hook_install(strict: bool, fail_on: str | None, repo: Path | None) -> None:
    """Write .git/hooks/pre-commit; an existing hook is kept and run first."""
    from ..review.hook import install

    root, _settings = settings_for(repo)
    extra = (["--strict"] if strict else []) + (["--fail-on", fail_on] if fail_on else [])
    state = install(root, extra)
    chained = f" (runs the previous hook {state.chained.name} first)" if state.chained else ""
    click.echo(f"installed {state.path}{chained}")


@hook.command("uninstall")
@repo_option
@handle_errors()
def hook_uninstall(repo: Path | None) -> None:
    """Remove repochat's pre-commit hook and restore the hook that was there before."""
    from ..review.hook import uninstall

    root, _settings = settings_for(repo)
    state = uninstall(root)
    click.echo(f"removed repochat's hook; {'restored the previous hook' if state.path.exists() else 'no hook left'}")
