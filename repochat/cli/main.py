"""The `repochat` command line: a thin layer over the library. Every command takes --json.

The group is here; its commands live one module per command group: ask.py, index.py (index, search, symbols, map),
status.py (status, models), review.py (review, hook), serve.py (serve, watch), sharing common.py's options.
"""

from __future__ import annotations

import sys

import click

from .ask import ask
from .index import index, repo_map, search, symbols
from .review import hook, review
from .serve import serve, watch
from .status import models, status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repochat")
def cli() -> None:
    """Ask questions about a whole repository with a local model, offline."""


for _command in (index, search, symbols, repo_map, status, ask, models, review, hook, serve, watch):
    cli.add_command(_command)


def main() -> None:
    from .crashguard import enable_crash_log, run_guarded, should_guard

    argv = sys.argv[1:]
    if should_guard(argv):
        sys.exit(run_guarded(argv))
    enable_crash_log()
    cli()
