"""Hybrid search, symbols and the repo map over a real index (LanceDB on disk, MiniLM vectors)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from repochat.config import load_settings
from repochat.errors import ConfigError
from repochat.index.identifiers import searchable
from repochat.index.indexer import embed_pending, update_index
from repochat.index.store import IndexStore
from repochat.retrieve.repomap import rank_definitions, render_map
from repochat.retrieve.search import MAX_QUERY_CHARS, cut_notice, glob_to_regex, search
from repochat.retrieve.symbols import callers, find_symbols
from repochat.tokens import count_tokens

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"
EXTRA = {
    "net/http_parse.py": "def parseHTTPRequest(raw):\n    head, _, body = raw.partition('\\r\\n\\r\\n')\n"
                         "    return head.split('\\r\\n'), body\n",
    "net/client.ts": "export function parse_http_request(raw: string): string[] {\n  return raw.split('\\n');\n}\n",
    "docs/設定.md": "# 設定\n\nキャッシュの保存先は REPOCHAT_CACHE_DIR で変更できます。\n\n# Other\n\nUnrelated text.\n",
    # A function without a docstring next to one whose docstring repeats the words of the query below.
    "io/streams.py": 'def describe(obj):\n    """Say which saved offset the stream was sought back to, so it can be read again."""\n'
                     '    return f"{obj.name} at {obj.tell()}"\n\n\n'
                     'def restore(s, mark):\n    s.seek(mark.saved_offset)\n    return s\n',
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> IndexStore:
    root = tmp_path_factory.mktemp("search") / "demo"
    shutil.copytree(DEMO, root)
    for rel, text in EXTRA.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    settings = load_settings(root)
    update_index(root, settings)
    embed_pending(IndexStore.open(settings.index_path(root), pinned=False), settings)
    return IndexStore.open(settings.index_path(root))


def paths(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.path for h in hits]


def test_identifier_parts_are_searchable_in_both_spellings(store: IndexStore) -> None:
    hits = search(store, "parse http request", k=3, mode="fts")
    assert set(paths(hits)[:2]) == {"net/http_parse.py", "net/client.ts"}


def test_code_is_found_by_its_identifiers_over_a_neighbours_docstring(store: IndexStore) -> None:
    hits = search(store, "seek the stream back to the saved offset so it can be read again", k=3, mode="fts")
    assert hits[0].symbol == "restore", [(h.location(), h.symbol) for h in hits]


def test_japanese_text_is_searchable(store: IndexStore) -> None:
    hits = search(store, "キャッシュの保存先", k=1, mode="fts")
    assert paths(hits) == ["docs/設定.md"] and hits[0].start_line == 1


def test_hybrid_finds_a_function_from_a_description(store: IndexStore) -> None:
    hits = search(store, "doubles the delay before each retry", k=3)
    assert "backoff_delay" in [h.symbol for h in hits]


def test_vector_mode_finds_meaning_without_shared_words(store: IndexStore) -> None:
    hits = search(store, "keep the most recent outcomes and drop the oldest", k=5, mode="vector")
    assert any(h.path == "taskq/results.py" for h in hits)


def test_filters_by_language_and_path_glob(store: IndexStore) -> None:
    assert set(paths(search(store, "parse request", k=10, language="typescript"))) == {"net/client.ts"}
    assert set(paths(search(store, "job", k=10, path_glob="taskq/w*.py"))) == {"taskq/worker.py"}
    assert search(store, "job", k=10, path_glob="nothing/**") == []


def test_results_carry_exact_line_ranges(store: IndexStore) -> None:
    hit = next(h for h in search(store, "backoff delay", k=5) if h.symbol == "backoff_delay")
    lines = (DEMO / hit.path).read_text().splitlines()
    assert lines[hit.start_line - 1].startswith("def backoff_delay")
    assert hit.text.splitlines()[-1] == lines[hit.end_line - 1]


def test_definitions_named_bare_and_qualified(store: IndexStore) -> None:
    from repochat.retrieve.search import definitions_named

    hits = definitions_named(store, ["Worker._failed", "backoff_delay"])
    worker = (DEMO / "taskq/worker.py").read_text().splitlines()
    failed_line = next(n for n, line in enumerate(worker, 1) if "def _failed" in line)
    assert [h.path for h in hits] == ["taskq/worker.py", "taskq/worker.py"]
    assert hits[0].start_line <= failed_line <= hits[0].end_line
    assert "def backoff_delay" in hits[1].text
    assert definitions_named(store, ["Queue._failed", "no_such_name"]) == []


def test_names_in_a_query_leave_out_cross_references() -> None:
    from repochat.retrieve.search import names_in

    assert names_in("Like :func:`pass_context`, but passes ``Context.obj``; see {@link mergeMap} and [`Value`].") \
        == ["Like", "passes", "Context"]  # and no shorter words than four letters
    assert names_in("How does Worker._failed call backoff_delay?") == ["does", "Worker", "_failed", "call",
                                                                         "backoff_delay"]


def test_names_written_as_calls() -> None:
    from repochat.retrieve.search import called_in

    assert called_in("Like :func:`pass_context()`; `const n = interval(1000)` and mergeMap(x), not map(x) or ran.")\
        == ["interval", "mergeMap"]
    # a reST "see also" names other definitions: requests' keys() says ".. seealso:: values() and items()."
    assert called_in("Dict-like keys() that returns names. .. seealso:: values() and items(). Unlike popitem().") \
        == ["keys", "popitem"]
    assert called_in("Like keys().\n.. seealso:: values()\n   and items()\nThen popitem()") == ["keys", "popitem"]


# Inputs that make a pattern start at every character of a long run and scan (or backtrack) to its end: quadratic
# patterns take minutes on a megabyte of these, linear ones milliseconds.
ADVERSARIAL = {"one word": "a" * 1_000_000, "camel": "aB" * 500_000, "snake": "a_" * 500_000, "caps": "A" * 1_000_000,
               "digits first": "9a" * 500_000, "unclosed links": "{@link " * 150_000, "roles": ":a:" * 300_000,
               "unclosed literals": "[`" * 500_000, "see also": ".. seealso::" * 100_000, "dotted": "a." * 500_000, "non-ASCII": "aé" * 500_000,
               "word then call": "a" * 1_000_000 + "é("}


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_patterns_over_user_text_take_linear_time(kind: str) -> None:
    from repochat.answer.references import named_in_answer
    from repochat.retrieve.search import called_in, names_in

    text = ADVERSARIAL[kind]
    for scan in (names_in, called_in, searchable, named_in_answer):
        began = time.perf_counter()
        scan(text)
        assert time.perf_counter() - began < 2.0, f"{scan.__name__} is not linear on {kind!r}"


def test_a_huge_query_is_cut_and_answered_in_seconds(store: IndexStore) -> None:
    """A 5 MB word and a megabyte of mixed text, through the real hybrid search (full text and vectors)."""
    mixed = ("How does parseHTTPRequest(raw) split the head, see {@link Queue} and :func:`restore`; " * 12_000)[:1_000_000]
    for query in ("a" * 5_000_000, mixed):
        began = time.perf_counter()
        search(store, query, k=5)
        assert time.perf_counter() - began < 2.0
        assert cut_notice(query) and f"{MAX_QUERY_CHARS:,}" in cut_notice(query)
    assert cut_notice("parse http request") is None
    # only the start is searched: a name past the limit is not looked for (it is found right at the limit)
    assert search(store, " " * (MAX_QUERY_CHARS - 16) + "parseHTTPRequest", k=3, mode="fts")
    assert search(store, " " * MAX_QUERY_CHARS + "parseHTTPRequest", k=3, mode="fts") == []


def test_a_path_glob_longer_than_any_path_is_refused(store: IndexStore) -> None:
    with pytest.raises(ConfigError, match="path glob too long"):
        search(store, "parse", path_glob="a" * 1_000_000)


def test_glob_translation() -> None:
    import re

    cases = {("*.py", "a/b/c.py"): True, ("src/*.py", "src/x/y.py"): False, ("src/**/*.py", "src/x/y.py"): True,
             ("src/**/*.py", "src/y.py"): True, ("docs/", "docs/a/b.md"): True, ("tests", "tests/x.py"): True,
             ("a?.go", "ab.go"): True, ("a?.go", "abc.go"): False}
    for (glob, path), expected in cases.items():
        assert bool(re.match(glob_to_regex(glob), path)) is expected, (glob, path)


def test_symbols_definitions_and_callers(store: IndexStore) -> None:
    definitions = [h for h in find_symbols(store, "backoff_delay") if h.role == "definition"]
    assert [(h.path, h.line) for h in definitions] == [("taskq/worker.py", 16)]
    assert set(callers(store, "backoff_delay")) == {"Worker._failed"}
    requeue = find_symbols(store, "Queue.requeue", role="definition")
    assert [(h.path, h.scope) for h in requeue] == [("taskq/queue.py", "Queue")]


def test_repo_map_ranks_referenced_definitions_and_respects_budget(store: IndexStore) -> None:
    entries = rank_definitions(store)
    top_files = [e.path for e in entries[:4]]
    assert "taskq/queue.py" in top_files  # Queue and Job are used by every other module
    text, used = render_map(entries, 120)
    assert 0 < used <= 120 and count_tokens(text) <= 120 + 10
    assert "taskq/queue.py:" in text


def test_a_which_function_context_shows_the_best_ranked_definition_first(tmp_path: Path) -> None:
    """The description a which-function question quotes names two long siblings; they no longer fill the budget
    before the definition search ranks first, which the answer starts with."""
    from repochat.retrieve.excerpts import retrieval_excerpts
    from repochat.retrieve.questions import definition_query

    body = "".join(f"    step_{i} = record(job, {i})\n" for i in range(40))
    files = {"jobs/alpha.py": f"def alpha_helper(job):\n{body}    return job\n",
             "jobs/beta.py": f"def beta_helper(job):\n{body}    return job\n",
             "jobs/retry.py": "def retry_delay(attempt, base=2.0):\n    return base ** attempt\n"}
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    settings = load_settings(tmp_path, {"index_dir": str(tmp_path / ".index"), "embeddings": "false"})
    question = ("Which function does the following: 'The retry delay of an attempt: how long a failed job waits "
                "before it is retried; unlike alpha_helper and beta_helper it records nothing'?")
    update_index(tmp_path, settings)
    assert search(IndexStore.open(settings.index_path(tmp_path)), definition_query(question), k=1)[0].symbol == \
        "retry_delay"
    # a budget that the two siblings the question names would fill on their own
    excerpts = [e for e in retrieval_excerpts(tmp_path, settings, question, 1280) if e.symbol]
    assert excerpts[0].symbol == "retry_delay" and excerpts[0].rank == 0, [e.symbol for e in excerpts]


def test_retrieval_context_is_a_map_then_exact_excerpts_within_budget(tmp_path: Path) -> None:
    from repochat.retrieve.excerpts import MAP_PATH, retrieval_excerpts

    root = tmp_path / "demo"
    shutil.copytree(DEMO, root)
    excerpts = retrieval_excerpts(root, load_settings(root), "How does Worker._failed decide to retry a job?", 900)
    assert excerpts[0].path == MAP_PATH and excerpts[0].text.startswith("taskq/")
    assert excerpts[1].path == "taskq/worker.py"  # the definition the question names comes first
    assert "def _failed" in excerpts[1].text
    for excerpt in excerpts[1:]:
        lines = (root / excerpt.path).read_text().splitlines()
        assert excerpt.text.splitlines() == lines[excerpt.start_line - 1:excerpt.end_line]
    assert count_tokens("\n".join(e.text for e in excerpts)) <= 900
