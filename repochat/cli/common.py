"""Helpers shared by every command module: options, settings, JSON output and one-line errors."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console

from ..config import Settings, load_settings
from .crashguard import EXIT_CRASHED
from ..errors import EngineCrash, RepochatError
from ..repo.walk import check_root, find_root

out = Console(highlight=False, soft_wrap=True)


def handle_errors(exit_code: int = 1) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """RepochatError -> one line on stderr and a non-zero exit; REPOCHAT_DEBUG=1 keeps the traceback."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt:
                click.echo("repochat: interrupted", err=True)
                sys.exit(130)
            except (click.exceptions.Exit, click.ClickException, SystemExit):
                raise
            except Exception as exc:
                if os.environ.get("REPOCHAT_DEBUG"):
                    raise
                click.echo(f"repochat: error: {one_line(exc)}", err=True)
                sys.exit(EXIT_CRASHED if isinstance(exc, EngineCrash) else exit_code)
        return run
    return decorate


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line: our own errors as they are, the OS's with the path, anything else as a bug."""
    if isinstance(exc, RepochatError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = " ".join(str(exc).split())[:300]
    return (f"internal error ({type(exc).__name__}: {text}); REPOCHAT_DEBUG=1 shows the traceback, "
            f"please report it")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def repo_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-C", "--repo", "repo", default=None, type=click.Path(path_type=Path),
                        help="Repository root (default: the git work tree containing the current directory).")(command)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")(command)


def settings_for(repo: Path | None, **overrides: Any) -> tuple[Path, Settings]:
    """A path given explicitly is the root as it is; none means the git work tree around the current directory."""
    root = check_root(repo) if repo is not None else find_root(Path.cwd())
    return root, load_settings(root, overrides)


def index_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where the index is (index, search, ask, serve, status): a bucket prefix, and whether this process may write it."""
    options = [
        click.option("--index-uri", help="The index in object storage: s3://bucket/prefix (endpoint, region and keys "
                                         "from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...)."),
        click.option("--read-only", "index_read_only", is_flag=True, default=None,
                     help="Read the index, never update it (an index a CI job builds)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options that choose the model and how it runs (ask, review, serve, status)."""
    options = [
        click.option("--model", help="A model name from `repochat models`, or a path to a GGUF file."),
        click.option("--lora", type=click.Path(dir_okay=False), help="A LoRA adapter (GGUF) to apply."),
        click.option("--memory", help="Memory budget for model + KV cache (e.g. 8GB; default: a share of free RAM)."),
        click.option("--ctx", type=int, help="Context length (up to what the model allows)."),
        click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), help="KV cache type."),
        click.option("--gpu-layers", type=int, help="Layers to offload to a GPU (needs a GPU build of llama.cpp)."),
        click.option("--threads", type=int, help="CPU threads (default: one per core that is idle now, by the load average)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def engine_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--engine URL: run the model on an OpenAI-compatible server instead of locally (ask, review, serve, status)."""
    return click.option("--engine", metavar="URL", default=None,
                        help="An OpenAI-compatible server to run the model on (e.g. http://gpu-box:8080/v1; API key "
                             "from REPOCHAT_API_KEY or OPENAI_API_KEY). Default: the engine setting, else local.")(command)
