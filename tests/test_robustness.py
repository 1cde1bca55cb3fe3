"""The robustness corpus (issue 10): the real CLI, in a child process, over a repository of bad inputs, as a git
repository and as a plain directory. Nothing may print a traceback, hang, or show content from outside the root;
every file is indexed or counted with a reason.

The corpus (tests/robustness_corpus.py) is built once per module: 20,000 tiny files and a 50 MB one take seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from repochat.config import load_settings
from repochat.index.store import IndexStore
from repochat.repo.walk import walk_repository

from engine_support import default_model_path
from robustness_corpus import (CONTENT_SKIPS, EXPECTED_PLAIN_SKIPS, EXPECTED_SKIPS, OUTSIDE_MARKER, TINY_FILES, make_corpus,
                               make_outside)

KINDS = ["git", "plain"]
INDEX_TIMEOUT = 300  # seconds; the corpus indexes in about 10 s on two busy cores
COMMAND_TIMEOUT = 180
ODD_NAMES = ["names/new\nline.py", "names/quote's.py", "names/back\\slash.py", 'names/double"quote.py',
             "names/with space.py", "names/\u65e5\u672c\u8a9e.py", "names/tab\there.py", "names/ leading_space.py"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("robustness")
    outside = make_outside(base / "outside")
    return {kind: make_corpus(base / kind, outside, use_git=kind == "git") for kind in KINDS}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("robustness_cache")
    return {**os.environ, "REPOCHAT_CACHE_DIR": str(cache), "REPOCHAT_EMBEDDINGS": "false",
            "REPOCHAT_MODEL": str(default_model_path(tmp_path_factory))}


@pytest.fixture(scope="module")
def indexed(corpus: dict[str, Path], cli_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The corpus indexed once per kind by `repochat index --json`: its summary."""
    return {kind: json.loads(repochat(cli_env, "index", "--no-embed", "--json", str(root),
                                      timeout=INDEX_TIMEOUT).stdout) for kind, root in corpus.items()}


def repochat(env: dict[str, str], *args: str, timeout: int = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process; it must exit 0 with no traceback and nothing from outside the root."""
    done = subprocess.run([sys.executable, "-m", "repochat", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, errors="replace")
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    assert OUTSIDE_MARKER not in done.stdout + done.stderr
    return done


@pytest.mark.parametrize("kind", KINDS)
def test_walk_counts_every_bad_input_with_its_reason(corpus: dict[str, Path], kind: str) -> None:
    root = corpus[kind]
    walked = walk_repository(root, load_settings(root))
    expected = {reason: set(paths) for reason, paths in EXPECTED_SKIPS.items()}
    for reason, paths in EXPECTED_PLAIN_SKIPS.items() if kind == "plain" else []:
        expected[reason] |= set(paths)
    assert {reason: paths & set(walked.skipped.get(reason, [])) for reason, paths in expected.items()} == expected
    files = {f.path for f in walked.files}
    assert sum(path.startswith("many/") for path in files) == TINY_FILES
    assert set(ODD_NAMES) <= files and "links/inside_link.py" in files
    assert not [path for path in files if path.startswith(("links/outside", "links/to_root/"))]


@pytest.mark.parametrize("kind", KINDS)
def test_index_reads_nothing_from_outside_and_counts_every_skip(corpus: dict[str, Path],
                                                                indexed: dict[str, dict[str, Any]],
                                                                kind: str) -> None:
    summary = indexed[kind]
    for reason, paths in EXPECTED_SKIPS.items():
        assert summary["skipped"].get(reason, 0) >= len(paths), reason
    store = IndexStore.open(corpus[kind] / ".repochat")
    rows = store.file_rows()
    assert {path: rows[path]["status"] for path in CONTENT_SKIPS} == CONTENT_SKIPS
    assert all(rows[name]["status"] == "indexed" for name in ODD_NAMES)
    assert not [text for text in store.column("chunks", "text") if OUTSIDE_MARKER in text]
    assert "deep/" + "/".join(f"level{n:02d}" for n in range(40)) + "/bottom.py" in rows


@pytest.mark.parametrize("kind", KINDS)
def test_search_status_map_and_symbols_over_the_corpus(corpus: dict[str, Path], indexed: dict[str, Any],
                                                       cli_env: dict[str, str], kind: str) -> None:
    repo = ["-C", str(corpus[kind])]
    assert repochat(cli_env, "search", OUTSIDE_MARKER, *repo).stdout == "no results\n"  # text: JSON echoes the query
    repochat(cli_env, "search", "leaked SECRET outside", "--json", *repo)  # the outside files' words: no marker back
    for query, path in [("name_function_3", "names/new\nline.py"), ("tiny_marker_4242", "many/d008/f04242.txt")]:
        found = json.loads(repochat(cli_env, "search", query, "-k", "20", "--json", *repo).stdout)
        assert path in {hit["path"] for hit in found["results"]}
    found = json.loads(repochat(cli_env, "search", "name_function", "--path", "names/quote's.py", "--json",
                                *repo).stdout)
    assert [hit["path"] for hit in found["results"]] == ["names/quote's.py"]
    report = json.loads(repochat(cli_env, "status", "--json", *repo).stdout)
    assert report["skipped"]["bad_name"] == 1 and report["skipped"]["symlink_outside"] >= 2
    assert report["plan"]["mode"] == "retrieval"  # the plan read the whole corpus to count its tokens
    text = repochat(cli_env, "map", "--tokens", "2000", "--focus", "names/new\nline.py", *repo).stdout
    assert "name_function_3" in text
    symbols = json.loads(repochat(cli_env, "symbols", "name_function_3", "--json", *repo).stdout)
    assert [hit["path"] for hit in symbols["definitions"]] == ["names/new\nline.py"]
    assert json.loads(repochat(cli_env, "symbols", "leaked", "--json", *repo).stdout)["definitions"] == []


@pytest.mark.parametrize("kind", KINDS)
def test_changed_files_with_odd_names_are_replaced_not_duplicated(corpus: dict[str, Path], indexed: dict[str, Any],
                                                                  cli_env: dict[str, str], kind: str) -> None:
    """A re-index deletes the old rows of a changed file by a SQL filter on its path: quotes, backslashes and
    newlines in the name must neither break the filter nor leave the old rows behind."""
    root = corpus[kind]
    changed = ["names/quote's.py", "names/back\\slash.py", "names/new\nline.py", 'names/double"quote.py']
    for number, name in enumerate(changed):
        (root / name).write_text(f"def renamed_function_{number}():\n    return {number}\n")
    summary = json.loads(repochat(cli_env, "index", "--no-embed", "--json", str(root), timeout=INDEX_TIMEOUT).stdout)
    assert summary["parsed"] == len(changed)
    store = IndexStore.open(root / ".repochat")
    paths = store.column("chunks", "path")
    assert all(paths.count(name) == 1 for name in changed)
    texts = [text for text in store.column("chunks", "text") if "name_function_" in text or "renamed_function_" in
             text]
    assert sum("renamed_function_" in text for text in texts) == len(changed)
    symbols = json.loads(repochat(cli_env, "symbols", "name_function_3", "--json", "-C", str(root)).stdout)
    assert symbols["definitions"] == []


@pytest.mark.model
def test_ask_over_the_corpus_in_retrieval_and_whole_repository_mode(corpus: dict[str, Path], indexed: dict[str, Any],
                                                                    cli_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    question = "What does name_function_3 return?"
    env = {**cli_env, "REPOCHAT_MAX_ANSWER_TOKENS": "32"}
    retrieved = json.loads(repochat(env, "ask", "--effort", "low", "--json", "-C", str(corpus["git"]), question,
                                    timeout=900).stdout)
    assert retrieved["answer"].strip() and retrieved["coverage"]["mode"] == "retrieval"
    small = tmp_path / "small"  # the corpus without its 20,000 tiny files, deep folders and 200 KB function
    make_corpus(small, make_outside(tmp_path / "outside"), use_git=True, tiny_files=False)
    with open(small / ".repochatignore", "a") as ignore:
        ignore.write("broken/huge_function.py\n")
    whole = json.loads(repochat(env, "ask", "--effort", "high", "--json", "-C", str(small), question,
                                timeout=900).stdout)
    assert whole["answer"].strip() and whole["coverage"]["mode"] == "whole"
    assert "names/new\nline.py" in {c["path"] for c in whole["citations"] + whole["references"]} or \
        "name_function_3" in whole["answer"]


def test_serve_over_the_corpus_answers_every_tool_without_leaking(corpus: dict[str, Path], indexed: dict[str, Any],
                                                                   cli_env: dict[str, str]) -> None:
    from anyio.from_thread import start_blocking_portal
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "repochat", "serve", "-C", str(corpus["git"])],
                                   env=cli_env)
    replies: list[str] = []
    with open(os.devnull, "w") as errlog, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(stdio_client(params, errlog=errlog)) as (read, write):
            with portal.wrap_async_context_manager(ClientSession(read, write)) as session:
                portal.call(session.initialize)
                for tool, arguments in [("search_code", {"query": "tiny_marker_4242", "k": 20}),
                                        ("search_code", {"query": OUTSIDE_MARKER}),
                                        ("find_symbol", {"name": "leaked"}), ("repo_map", {"tokens": 500}),
                                        ("index_status", {}), ("find_references", {"name": "name_function_3"})]:
                    result = portal.call(lambda: session.call_tool(tool, arguments))
                    assert not result.is_error, (tool, result.content)
                    replies.append(result.content[0].text)
                for uri in ["repo://files/links/outside_file.py", "repo://files/links/outside_dir/inner.py"]:
                    try:
                        replies.append(str(portal.call(lambda: session.read_resource(uri))))
                    except Exception as refused:  # refused is right; content from outside is not
                        replies.append(str(refused))
    assert "many/d008/f04242.txt" in {hit["path"] for hit in json.loads(replies[0])["results"]}
    assert not [reply for reply in replies if OUTSIDE_MARKER in reply.replace('"query": "' + OUTSIDE_MARKER, "")]
