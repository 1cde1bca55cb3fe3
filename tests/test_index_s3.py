"""The index in an S3 bucket (index_uri): a real S3-compatible server (moto's server mode, tests/s3_support.py) on
127.0.0.1, real LanceDB tables in it, real git repositories. What holds on local disk must hold there: the same
search results, incremental updates, readers pinned to a published snapshot while a writer works, compaction that
spares those snapshots; and read-only readers that write nothing, with one-line errors when the store is unusable."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from repochat.cli.main import cli
from repochat.config import load_settings
from repochat.index import upkeep
from repochat.index.indexer import embed_pending, update_index
from repochat.index.location import IndexReadOnly, ObjectFolder
from repochat.index.schema import FOLDER
from repochat.index.store import IndexStore
from repochat.retrieve.excerpts import fresh_index
from repochat.retrieve.search import search
from repochat.retrieve.symbols import find_symbols

from repo_support import git, write_files
from s3_support import (aws_environ, child_environ, free_port, new_bucket, object_keys, s3_client,
                        s3_server)
from test_index import SOURCES
from test_index_integrity import many_files

REPO = {**SOURCES, **many_files(40)}
QUERIES = ("total area", "clamp limits to range", "function_7", "Thing12 method", "area of shapes", "return x times",
           "how to compute", "pkg3 module")


@pytest.fixture(scope="module")
def endpoint() -> str:  # type: ignore[misc]
    with s3_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with this process's AWS variables pointing at the server (as CI's or a laptop's would)."""
    for key, value in aws_environ(endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return new_bucket(endpoint)


def remote(root: Path, bucket: str, **overrides: object):  # type: ignore[no-untyped-def]
    return load_settings(root, {"embeddings": False, "index_uri": f"s3://{bucket}/team/repo", **overrides})


def top10(store: IndexStore, query: str, mode: str = "fts") -> list[tuple[str, int, int]]:
    return [(hit.path, hit.start_line, hit.end_line) for hit in search(store, query, k=10, mode=mode)]


def cli_run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("repochat: error: ") and "Traceback" not in result.output, result.output
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def index_both(root: Path, bucket: str, embeddings: bool = False) -> tuple[IndexStore, IndexStore]:
    """The same repository indexed into <root>/.repochat and into the bucket; (local, remote) readers."""
    stores = []
    for settings in (load_settings(root, {"embeddings": embeddings}), remote(root, bucket, embeddings=embeddings)):
        update_index(root, settings)
        if embeddings:
            assert embed_pending(IndexStore.open(settings.index_path(root), pinned=False), settings) > 0
        stores.append(IndexStore.open(settings.index_path(root)))
    return stores[0], stores[1]


# --- the same index, elsewhere -----------------------------------------------------------------------------------
def test_an_index_in_a_bucket_answers_every_search_as_the_local_index_does(make_repo, bucket: str,
                                                                          endpoint: str) -> None:
    root = make_repo(REPO)
    local, in_bucket = index_both(root, bucket, embeddings=True)
    assert isinstance(in_bucket.path, ObjectFolder)
    stored = object_keys(endpoint, bucket, "team/repo/")
    assert f"team/repo/{FOLDER}/meta.json" in stored  # the snapshot record lives beside the tables
    assert any(key.startswith(f"team/repo/{FOLDER}/db/vectors.lance/") for key in stored)
    assert [p.name for p in (root / ".repochat").iterdir() if p.name.startswith("index-")] == [FOLDER]  # local's
    for query in QUERIES:
        for mode in ("fts", "vector", "hybrid"):
            expected = top10(local, query, mode)
            assert expected, (query, mode)
            assert top10(in_bucket, query, mode) == expected, (query, mode)


def test_two_readers_elsewhere_read_the_bucket_at_once_and_write_nothing(make_repo, bucket: str,
                                                                         endpoint: str, tmp_path: Path) -> None:
    root = make_repo(REPO)
    local, in_bucket = index_both(root, bucket)
    laptop = tmp_path / "laptop"  # another clone, at another path: nothing of the index is on its disk
    git(tmp_path, "clone", "-q", str(root), str(laptop))
    before = object_keys(endpoint, bucket)
    command = [sys.executable, "-m", "repochat", "search", "total area", "--mode", "fts", "--json", "--read-only",
               "--index-uri", f"s3://{bucket}/team/repo", "-C", str(laptop)]

    def read() -> list[tuple[str, int, int]]:
        done = subprocess.run(command, env=child_environ(endpoint), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return [(r["path"], r["start_line"], r["end_line"]) for r in json.loads(done.stdout)["results"]]

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: read(), range(2))
    assert first == second == top10(local, "total area")
    assert object_keys(endpoint, bucket) == before
    assert not (laptop / ".repochat").exists()


def test_serve_answers_from_the_bucket_read_only(make_repo, bucket: str, endpoint: str, tmp_path: Path) -> None:
    """`repochat serve` on a laptop: its search tool reads the bucket, and nothing is written there."""
    from anyio.from_thread import start_blocking_portal
    from mcp import ClientSession, StdioServerParameters, stdio_client

    root = make_repo(REPO)
    local, _ = index_both(root, bucket)
    laptop = tmp_path / "laptop"
    git(tmp_path, "clone", "-q", str(root), str(laptop))
    write_files(laptop, {"pkg/late.py": "def total_area_late():\n    return 0\n"})  # a local edit: not served
    before = object_keys(endpoint, bucket)
    params = StdioServerParameters(command=sys.executable, env=child_environ(endpoint, REPOCHAT_EMBEDDINGS="0"),
                                   args=["-m", "repochat", "serve", "--read-only", "--index-uri",
                                         f"s3://{bucket}/team/repo", "-C", str(laptop)])
    with open(tmp_path / "serve.log", "w", encoding="utf-8") as log, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(stdio_client(params, errlog=log)) as (read, write):
            with portal.wrap_async_context_manager(ClientSession(read, write)) as session:
                portal.call(session.initialize)
                result = portal.call(lambda: session.call_tool("search_code", {"query": "total area", "mode": "fts"}))
    assert not result.is_error, result.content
    found = json.loads(result.content[0].text)["results"]
    assert [(hit["path"], hit["start_line"], hit["end_line"]) for hit in found] == top10(local, "total area")
    assert object_keys(endpoint, bucket) == before


# --- updates and snapshots -----------------------------------------------------------------------------------------
def test_an_incremental_update_in_the_bucket_parses_only_the_change(make_repo, bucket: str) -> None:
    root = make_repo(REPO)
    settings = remote(root, bucket)
    assert update_index(root, settings).parsed == len(REPO)
    earlier = IndexStore.open(settings.index_path(root))
    write_files(root, {"pkg/geometry.py": SOURCES["pkg/geometry.py"] + "\n\ndef perimeter_of(shape):\n"
                                                                        "    return 2 * 3.14159 * shape.radius\n"})
    (root / "pkg/util.go").unlink()
    summary = update_index(root, settings)
    assert (summary.parsed, summary.unchanged, summary.deleted) == (1, len(REPO) - 2, 1)
    now = IndexStore.open(settings.index_path(root))
    assert [hit.path for hit in find_symbols(now, "perimeter_of", "definition")] == ["pkg/geometry.py"]
    assert top10(now, "perimeter_of")[0][0] == "pkg/geometry.py"
    assert find_symbols(now, "Clamp") == []
    # A reader opened before the update stays on the snapshot it opened, full-text index included.
    assert find_symbols(earlier, "perimeter_of") == []
    assert [hit.path for hit in find_symbols(earlier, "Clamp", "definition")] == ["pkg/util.go"]
    assert top10(earlier, "clamp limits to range")[0][0] == "pkg/util.go"
    assert update_index(root, settings).parsed == 0


def test_readers_of_the_bucket_see_no_write_before_it_is_published(make_repo, bucket: str) -> None:
    root = make_repo(REPO)
    settings = remote(root, bucket)
    update_index(root, settings)
    writer = IndexStore.open(settings.index_path(root), pinned=False)
    writer.replace_content(["pkg/geometry.py"], [], [])  # half an update: the file's chunks and symbols dropped
    during = IndexStore.open(settings.index_path(root))
    assert [hit.path for hit in find_symbols(during, "total_area", "definition")] == ["pkg/geometry.py"]
    assert top10(during, "total area")[0][0] == "pkg/geometry.py"
    writer.publish_snapshot()
    assert find_symbols(IndexStore.open(settings.index_path(root)), "total_area") == []
    summary = update_index(root, settings)  # the next update finds the file's rows disagreeing and redoes it
    assert summary.parsed == 1
    assert find_symbols(IndexStore.open(settings.index_path(root)), "total_area", "definition")


def test_compaction_in_the_bucket_spares_the_snapshots_readers_use(make_repo, bucket: str, endpoint: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upkeep, "OPTIMIZE_AFTER_VERSIONS", 4)
    monkeypatch.setattr(upkeep, "KEEP_VERSIONS_FOR", timedelta(seconds=0.2))
    monkeypatch.setattr(upkeep, "COMPACTION_MARGIN", timedelta(seconds=0.1))
    root = make_repo(SOURCES)
    settings = remote(root, bucket)
    update_index(root, settings)
    for number in range(6):
        write_files(root, {"pkg/edited.py": f"def edit_{number}(value):\n    return value + {number}\n"})
        reader = IndexStore.open(settings.index_path(root))  # on the previous snapshot once the update is done
        update_index(root, settings)
        assert top10(reader, "total area")[0][0] == "pkg/geometry.py"
        seen = {chunk["symbol"] for chunk in reader.table("chunks").to_arrow().to_pylist()}
        assert (f"edit_{number - 1}" in seen if number else "edit_0" not in seen)
        time.sleep(0.3)  # versions age in wall time
    meta = json.loads((ObjectFolder.of(settings.index_uri) / FOLDER / "meta.json").read_text())
    assert "chunks" in meta["optimized"]
    manifests = [key for key in object_keys(endpoint, bucket, f"team/repo/{FOLDER}/db/chunks.lance/_versions/")]
    assert len(manifests) < 2 * 6  # the versions the edits wrote were cleaned up
    assert top10(IndexStore.open(settings.index_path(root)), "edit_5")[0][0] == "pkg/edited.py"


# --- read-only -------------------------------------------------------------------------------------------------------
def test_read_only_refuses_every_update_in_one_line_and_still_reads(make_repo, bucket: str, endpoint: str) -> None:
    root = make_repo(REPO)
    update_index(root, remote(root, bucket))
    write_files(root, {"pkg/late.py": "def arrived_late():\n    return 1\n"})
    before = object_keys(endpoint, bucket)
    uri = f"s3://{bucket}/team/repo"

    line = one_error_line(cli_run("index", str(root), "--no-embed", "--index-uri", uri, "--read-only"))
    assert line == f"repochat: error: the index at {uri} is read-only here (index_read_only / --read-only); " \
                   f"update it where it is built"
    read_only = remote(root, bucket, index_read_only=True, embeddings=True)
    with pytest.raises(IndexReadOnly):
        embed_pending(IndexStore.open(read_only.index_path(root)), read_only)
    store = fresh_index(root, read_only)  # what an ask retrieves from: as published, not refreshed
    assert find_symbols(store, "arrived_late") == []
    assert top10(store, "total area")[0][0] == "pkg/geometry.py"
    found = cli_run("search", "total area", "-C", str(root), "--json", "--index-uri", uri, "--read-only")
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["results"][0]["path"] == "pkg/geometry.py"
    assert object_keys(endpoint, bucket) == before


# --- one-line errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("uri", ["gs://bucket/prefix", "s3://", "s3://Not_A_Bucket/x", "bucket/prefix"])
def test_a_bad_uri_is_one_line(make_repo, uri: str) -> None:
    root = make_repo(SOURCES)
    for command in (["index", str(root), "--no-embed"], ["search", "area", "-C", str(root)]):
        line = one_error_line(cli_run(*command, "--index-uri", uri))
        assert line == f"repochat: error: index_uri must be s3://bucket/prefix, not {uri!r} (a local folder is " \
                       f"index_dir)"


def test_a_missing_bucket_is_one_line_and_nothing_is_created(make_repo, bucket: str, endpoint: str) -> None:
    root = make_repo(SOURCES)
    for command in (["index", str(root), "--no-embed"], ["search", "area", "-C", str(root)]):
        line = one_error_line(cli_run(*command, "--index-uri", "s3://no-such-bucket-here/prefix"))
        assert line == f"repochat: error: the bucket 'no-such-bucket-here' does not exist at {endpoint}; " \
                       f"create it first"
    assert "no-such-bucket-here" not in [b["Name"] for b in s3_client(endpoint).list_buckets()["Buckets"]]


def test_an_unreachable_endpoint_is_one_line_and_quick(make_repo, bucket: str) -> None:
    root = make_repo(SOURCES)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for command in (["index", str(root), "--no-embed"], ["search", "area", "-C", str(root)]):
        started = time.monotonic()
        line = one_error_line(cli_run(*command, "--index-uri", f"s3://{bucket}/x", env={"AWS_ENDPOINT_URL": nowhere}))
        assert line.startswith(f"repochat: error: cannot reach the object store at {nowhere} for s3://{bucket}/x"), line
        assert time.monotonic() - started < 30


def test_refused_credentials_are_one_line(make_repo) -> None:
    root = make_repo(SOURCES)
    with s3_server(enforce_auth=True) as strict:
        env = {**aws_environ(strict), "AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000"}
        for command in (["index", str(root), "--no-embed"], ["search", "area", "-C", str(root)]):
            line = one_error_line(cli_run(*command, "--index-uri", "s3://team-index/repo", env=env))
            assert line.startswith(f"repochat: error: the object store at {strict} refused the credentials"), line
