"""Which language a file is in, read from the data in grammars/<language>/language.toml.

Python never names a language: every fact (extensions, file names, the module that ships the grammar) comes from the
toml files, and what a definition, a chunk or a reference is from the .scm queries next to them. A folder whose toml
has no ``module`` describes a text format (markdown, prose) chunked without a grammar.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath

from tree_sitter import Language, Node, Parser, Query

from repochat.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has tomli under its old name
    import tomli as tomllib

GRAMMARS_PACKAGE = "repochat.grammars"
QUERY_FILES = ("chunks.scm", "tags.scm")


@dataclass(frozen=True)
class LanguageSpec:
    """A tree-sitter language: how to recognise its files and where its grammar comes from."""

    name: str
    extensions: tuple[str, ...]
    module: str  # python module shipping the grammar, e.g. "tree_sitter_python"
    function: str  # function of that module returning the language pointer
    filenames: tuple[str, ...] = ()  # exact file names without a telling extension
    queries: str = ""  # grammars/ folder whose .scm files it uses, when not its own (TSX uses TypeScript's)
    wrappers: tuple[str, ...] = ()  # node types around a definition that belong to its chunk (C++ templates)
    interpreters: tuple[str, ...] = ()  # programs a #! line names (a script whose file name says nothing)


@dataclass(frozen=True)
class TextFormat:
    """A text format chunked without a grammar: ``chunker`` is "markdown" (headings) or "text" (paragraphs)."""

    name: str
    extensions: tuple[str, ...]
    chunker: str
    filenames: tuple[str, ...] = ()


def _grammar_folders() -> list[Traversable]:
    root = files(GRAMMARS_PACKAGE)
    return sorted((d for d in root.iterdir() if d.is_dir() and d.joinpath("language.toml").is_file()),
                  key=lambda d: d.name)


def _strings(data: dict[str, object], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"grammars: '{key}' must be a list of strings in {data.get('name', '?')}/language.toml")
    return tuple(value)


def _read_toml(folder: Traversable) -> dict[str, object]:
    try:
        return tomllib.loads(folder.joinpath("language.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"grammars: {folder.name}/language.toml is not valid TOML: {exc}") from exc


@cache
def _catalog() -> tuple[tuple[LanguageSpec, ...], tuple[TextFormat, ...]]:
    specs: list[LanguageSpec] = []
    formats: list[TextFormat] = []
    for folder in _grammar_folders():
        data = _read_toml(folder)
        name = str(data.get("name", folder.name))
        extensions = tuple(e.lower() for e in _strings(data, "extensions"))
        filenames = _strings(data, "filenames")
        if "module" in data:
            specs.append(LanguageSpec(name, extensions, str(data["module"]), str(data.get("function", "language")),
                                      filenames, str(data.get("queries", folder.name)), _strings(data, "wrappers"),
                                      _strings(data, "interpreters")))
        else:
            formats.append(TextFormat(name, extensions, str(data.get("chunker", "text")), filenames))
    return tuple(specs), tuple(formats)


@cache
def _by_suffix() -> dict[str, LanguageSpec | TextFormat]:
    """Lower-case extension or exact file name -> language or text format (file names win)."""
    table: dict[str, LanguageSpec | TextFormat] = {}
    specs, formats = _catalog()
    entries: tuple[LanguageSpec | TextFormat, ...] = (*specs, *formats)
    for entry in entries:
        for ext in entry.extensions:
            table.setdefault(ext, entry)
    for entry in entries:
        for filename in entry.filenames:
            table["/" + filename] = entry
    return table


def _lookup(path: str) -> LanguageSpec | TextFormat | None:
    pure = PurePosixPath(path.replace("\\", "/"))
    table = _by_suffix()
    by_name = table.get("/" + pure.name)
    if by_name is not None:
        return by_name
    return table.get(pure.suffix.lower()) if pure.suffix else None


def language_for(path: str, text: str = "") -> LanguageSpec | None:
    """The tree-sitter language of ``path`` by its file name or extension, else (for a file without an extension)
    by the interpreter its ``#!`` line names; None when it has none."""
    entry = _lookup(path)
    if entry is None and not PurePosixPath(path).suffix and text.startswith("#!"):
        return _by_interpreter().get(_interpreter(text))
    return entry if isinstance(entry, LanguageSpec) else None


@cache
def _by_interpreter() -> dict[str, LanguageSpec]:
    return {program: spec for spec in _catalog()[0] for program in spec.interpreters}


def _interpreter(text: str) -> str:
    """'#!/usr/bin/env -S python3.11 -u' -> 'python3': the program, without a version after its name."""
    words = text[2:text.find("\n") if "\n" in text else 200].split()
    if words and words[0].endswith("/env"):
        words = [word for word in words[1:] if not word.startswith("-")]
    program = PurePosixPath(words[0]).name if words else ""
    return re.sub(r"[\d.]+$", "", program) if program not in _by_interpreter() else program


def supported_languages() -> list[LanguageSpec]:
    return list(_catalog()[0])


def text_formats() -> list[TextFormat]:
    return list(_catalog()[1])


def text_kind(path: str) -> str:
    """How a file without a tree-sitter language is chunked: "markdown" (by headings) or "text"."""
    entry = _lookup(path)
    return entry.chunker if isinstance(entry, TextFormat) else "text"


def is_prose(path: str) -> bool:
    """True for files listed by a text format (paragraph "section" chunks), False for the window fallback."""
    return isinstance(_lookup(path), TextFormat)


def query_source(spec: LanguageSpec, filename: str) -> str:
    """The text of grammars/<language>/<filename> ("" when the file is absent)."""
    resource = files(GRAMMARS_PACKAGE).joinpath(spec.queries or spec.name, filename)
    return resource.read_text(encoding="utf-8") if resource.is_file() else ""


@cache
def ts_language(spec: LanguageSpec) -> Language:
    try:
        module = importlib.import_module(spec.module)
        return Language(getattr(module, spec.function)())
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"grammar for {spec.name} unavailable: {spec.module}.{spec.function} ({exc})") from exc


@cache
def ts_parser(spec: LanguageSpec) -> Parser:
    return Parser(ts_language(spec))


@cache
def node_text(node: Node) -> str:
    """A node's source text. Trees here are parsed from bytes, so tree-sitter keeps their text (``Node.text`` is None
    only for a tree parsed through a read callback)."""
    text = node.text
    if text is None:
        raise ValueError(f"tree-sitter kept no text for a {node.type} node")
    return text.decode("utf-8", "replace")


def ts_query(spec: LanguageSpec, filename: str) -> Query:
    """The compiled query of grammars/<language>/<filename>, compiled once per process."""
    return Query(ts_language(spec), query_source(spec, filename))
