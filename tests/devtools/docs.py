"""Parts of the README generated from the code, so the documentation cannot drift from it.

`python tests/devtools/docs.py` rewrites the marked blocks of README.md; a test fails when they are out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

BLOCKS = ("commands", "languages")


def command_reference() -> str:
    from repochat.cli.main import cli

    sections = []
    context = click.Context(cli, info_name="repochat")
    for name in sorted(cli.list_commands(context)):
        sections.append(_command_section(context, name, cli.get_command(context, name)))
    return "\n".join(sections)


def _command_section(parent: click.Context, name: str, command: click.Command | None) -> str:
    assert command is not None
    context = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(command.collect_usage_pieces(context))
    lines = [f"### `repochat {name} {usage}`", "",
             (command.help or "").strip().split("\n\n")[0].replace("\n", " "), ""]
    if isinstance(command, click.Group):
        for sub in sorted(command.list_commands(context)):
            lines.append(_command_section(context, f"{name} {sub}", command.get_command(context, sub)))
        return "\n".join(lines)
    for param in command.params:
        if isinstance(param, click.Option) and param.help and not param.hidden:
            flags = ", ".join(f"`{opt}`" for opt in param.opts + param.secondary_opts)
            lines.append(f"- {flags}: {param.help}")
    lines.append("")
    return "\n".join(lines)


def language_table() -> str:
    from repochat.index.languages import supported_languages

    rows = ["| language | extensions, file names and `#!` interpreters |", "|---|---|"]
    for spec in sorted(supported_languages(), key=lambda s: s.name):
        shebangs = tuple(f"#!{program}" for program in spec.interpreters)
        rows.append(f"| {spec.name} | {' '.join(spec.extensions + spec.filenames + shebangs)} |")
    rows.append("| markdown, plain text | chunked by headings and paragraphs |")
    rows.append("| any other text file | line windows |")
    return "\n".join(rows)


def render(readme: str) -> str:
    generated = {"commands": command_reference(), "languages": language_table()}
    for block in BLOCKS:
        pattern = re.compile(rf"(<!-- {block}:start -->\n).*?(<!-- {block}:end -->)", re.S)
        readme = pattern.sub(lambda m: m.group(1) + generated[block].rstrip() + "\n" + m.group(2), readme)
    return readme


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
