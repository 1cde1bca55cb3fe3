"""Language knowledge as data: grammars/<language>/ folders, their queries, and file-to-language lookup."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest
from tree_sitter import Parser

from repochat.index import languages
from repochat.index.languages import language_for, supported_languages, text_kind, ts_language, ts_query
from repochat.index.parse import parse_file

REQUIRED = {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "c_sharp", "ruby", "php",
            "bash"}
SPECS = {spec.name: spec for spec in supported_languages()}
CHUNK_CAPTURE = re.compile(r"^(chunk\.[a-z_]+|name|parent|body|doc|leading|leading\.doc)$")
TAG_CAPTURE = re.compile(r"^(name\.)?(definition|reference)\.[a-z_]+$")


def test_every_required_language_is_supported() -> None:
    assert REQUIRED <= set(SPECS), f"missing: {REQUIRED - set(SPECS)}"


def test_grammars_ship_as_package_data() -> None:
    root = files("repochat.grammars")
    for name in REQUIRED:
        folder = root.joinpath(name)
        assert folder.joinpath("language.toml").is_file(), name
    for spec in SPECS.values():
        queries = root.joinpath(spec.queries or spec.name)
        assert queries.joinpath("chunks.scm").is_file(), spec.name
        assert queries.joinpath("tags.scm").is_file(), spec.name


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_queries_compile_against_their_grammar(name: str) -> None:
    spec = SPECS[name]
    chunks = ts_query(spec, "chunks.scm")
    tags = ts_query(spec, "tags.scm")
    chunk_captures = {chunks.capture_name(i) for i in range(chunks.capture_count)}
    tag_captures = {tags.capture_name(i) for i in range(tags.capture_count)}
    # One capture naming scheme for every language.
    assert all(CHUNK_CAPTURE.match(c) for c in chunk_captures), sorted(chunk_captures)
    assert all(TAG_CAPTURE.match(c) for c in tag_captures), sorted(tag_captures)
    assert any(c.startswith("chunk.") for c in chunk_captures) and "name" in chunk_captures
    assert any(c.startswith("name.definition.") for c in tag_captures)
    assert any(c.startswith("name.reference.") for c in tag_captures)
    tree = Parser(ts_language(spec)).parse(b"")
    assert tree.root_node is not None


@pytest.mark.parametrize(("path", "expected"), [
    ("src/app.py", "python"), ("stubs/x.pyi", "python"), ("web/app.JS", "javascript"), ("web/mod.mjs", "javascript"),
    ("a/b.ts", "typescript"), ("a/view.tsx", "tsx"), ("cmd/main.go", "go"), ("src/lib.rs", "rust"),
    ("Main.java", "java"), ("x.c", "c"), ("x.h", "c"), ("x.cpp", "cpp"), ("x.hpp", "cpp"), ("x.cc", "cpp"),
    ("Prog.cs", "c_sharp"), ("lib/a.rb", "ruby"), ("Rakefile", "ruby"), ("dir/Gemfile", "ruby"),
    ("index.php", "php"), ("run.sh", "bash"), ("home/.bashrc", "bash"), ("C:\\repo\\tool.py", "python"),
])
def test_language_for_extension_and_file_name(path: str, expected: str) -> None:
    spec = language_for(path)
    assert spec is not None and spec.name == expected


@pytest.mark.parametrize("path", ["README.md", "notes.txt", "style.css", "page.html", "Makefile", "data.po", "noext"])
def test_files_without_grammar_have_no_language(path: str) -> None:
    assert language_for(path) is None


@pytest.mark.parametrize(("path", "expected"), [
    ("README.md", "markdown"), ("docs/guide.markdown", "markdown"), ("notes.txt", "text"), ("index.rst", "text"),
    ("style.css", "text"), ("locale/fr.po", "text"), ("LICENSE", "text"),
])
def test_text_kind(path: str, expected: str) -> None:
    assert text_kind(path) == expected


def test_indexing_code_names_no_language() -> None:
    """Language knowledge lives in grammars/: the chunker's Python must not mention a language by name."""
    package = Path(languages.__file__).parent
    modules = ["languages.py", "parse.py", "definitions.py", "chunking.py", "pieces.py", "symbols.py",
               "textchunks.py"]
    names = sorted(n for n in REQUIRED if len(n) > 2) + ["typescript", "golang"]
    for module in modules:
        source = (package / module).read_text(encoding="utf-8").lower()
        for name in names:
            assert f'"{name}"' not in source and f"'{name}'" not in source, f"{module} names {name}"


@pytest.mark.parametrize("path, first_line, expected", [
    ("bin/deploy", "#!/bin/sh", "bash"),
    ("bin/setup", "#!/usr/bin/env bash", "bash"),
    ("scripts/run", "#!/usr/bin/env -S python3.11 -u", "python"),
    ("tool", "#!/usr/bin/python3", "python"),
    ("cli", "#!/usr/bin/env node", "javascript"),
    ("notes.txt", "#!/bin/sh", None),  # an extension decides, whatever the first line says
    ("tool", "#!/usr/bin/perl", None),
    ("tool", "#!", None),
    ("tool", "echo hi", None),
])
def test_a_script_without_an_extension_is_known_by_its_interpreter(path: str, first_line: str,
                                                                   expected: str | None) -> None:
    spec = language_for(path, first_line + "\n")
    assert (spec.name if spec else None) == expected


def test_an_extensionless_shell_script_is_parsed_as_bash() -> None:
    parsed = parse_file("bin/deploy", "#!/bin/sh\nset -e\n\nship() {\n  rsync -a build/ host:/srv\n}\n\nship\n")
    assert parsed.language == "bash"
    assert [(s.name, s.role) for s in parsed.symbols if s.role == "definition"] == [("ship", "definition")]
