"""The retrieval evaluation harness: stripping, metrics, the BM25 control, case loading, and a whole run on a small
source folder indexed by the real repochat index (LanceDB, tree-sitter, MiniLM vectors)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from devtools.evaluate import (Case, EvalError, EvalOptions, WindowBM25, as_json, blank_lines, gold_rank,
                               load_cases, run_evaluation, strip_set, summarize)
from devtools.evaluate.bm25 import WINDOW_LINES, WINDOW_STRIDE, file_windows
from devtools.evaluate.metrics import distinct_files, percentile
from devtools.evaluate.sources import unpack_archive

ROOT = Path(__file__).resolve().parents[1]


def needle(path: str = "a.py", start: int = 10, end: int = 20, strip: tuple[int, int] | None = (11, 13)) -> Case:
    return Case(id="x", suite="needle-docstring", source={"kind": "dir", "path": "/src"}, query="q", path=path,
                start_line=start, end_line=end, strip_lines=strip)


# --- stripping ----------------------------------------------------------------------------------------------------
def test_blank_lines_empties_the_range_and_keeps_every_line_number() -> None:
    text = "def f():\r\n    '''Doc\n    more.'''\n    return 1\nlast"
    out = blank_lines(text, [(2, 3)])
    assert out == "def f():\r\n\n\n    return 1\nlast"
    assert out.splitlines()[3] == "    return 1"


def test_blank_lines_ignores_a_range_past_the_end() -> None:
    assert blank_lines("a\nb\n", [(2, 9)]) == "a\n\n"


def test_strip_set_groups_ranges_by_file_without_duplicates() -> None:
    cases = [needle("b.py", strip=(5, 6)), needle("a.py", strip=(3, 4)), needle("b.py", strip=(1, 2)),
             needle("b.py", strip=(5, 6)), needle("c.py", strip=None)]
    assert strip_set(cases) == {"a.py": [(3, 4)], "b.py": [(1, 2), (5, 6)]}


# --- metrics ------------------------------------------------------------------------------------------------------
def test_needle_rank_is_the_first_chunk_overlapping_the_function_in_its_file() -> None:
    case = needle("pkg/a.py", 10, 20)
    ranking = [("pkg/b.py", 10, 20), ("pkg/a.py", 1, 9), ("pkg/a.py", 21, 30), ("pkg/a.py", 18, 40),
               ("pkg/a.py", 10, 20)]
    assert gold_rank(case, ranking) == 4
    assert gold_rank(case, ranking[:3]) is None


def test_file_localization_ranks_distinct_files() -> None:
    case = Case(id="f", suite="file-localization", source={}, query="q", gold_files=("c.py", "z.py"))
    ranking = [("a.py", 1, 2), ("a.py", 5, 9), ("b.py", 1, 2), ("a.py", 20, 30), ("c.py", 1, 1)]
    assert distinct_files(ranking) == ["a.py", "b.py", "c.py"]
    assert gold_rank(case, ranking) == 3


def test_summarize_hit_rates_and_reciprocal_rank() -> None:
    figures = summarize([1, 3, None, 7, 12], "needle-docstring", k=10)
    assert figures["hit@1"] == 0.2
    assert figures["hit@5"] == 0.4
    assert figures["hit@10"] == 0.6
    assert figures["mrr@10"] == round((1 + 1 / 3 + 1 / 7) / 5, 3)
    assert "acc@1" in summarize([2], "file-localization", k=10)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([], 0.5) == 0.0


# --- the BM25 control ---------------------------------------------------------------------------------------------
def test_windows_cover_every_line_with_the_documented_size_and_stride() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 86))
    windows = [w for w, _ in file_windows("f.py", text)]
    assert [(w.start_line, w.end_line) for w in windows] == [(1, 40), (21, 60), (41, 80), (61, 85)]
    assert WINDOW_LINES == 40 and WINDOW_STRIDE == 20
    assert [(w.start_line, w.end_line) for w, _ in file_windows("g.py", "one\ntwo")] == [(1, 2)]


def test_bm25_prefers_the_window_with_rare_query_words() -> None:
    filler = "\n".join("the value of the thing" for _ in range(60))
    documents = file_windows("common.py", filler) + file_windows("rare.py", "the zebra crossing\n" * 3) \
        + file_windows("other.py", "the thing\n" * 5)
    ranked = WindowBM25(documents).search("the zebra thing", k=3)
    assert ranked[0].path == "rare.py"
    assert WindowBM25(documents).search("absent words only", k=3) == []


# --- cases and archives -------------------------------------------------------------------------------------------
def test_a_bad_cases_line_names_its_file_and_line(tmp_path: Path) -> None:
    good = {"suite": "needle-docstring", "source": {"kind": "dir", "path": "src"}, "path": "a.py",
            "start_line": 1, "end_line": 2, "query": "q"}
    cases_file = tmp_path / "cases.jsonl"
    cases_file.write_text(json.dumps(good) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(EvalError, match=r"cases.jsonl:3: not JSON"):
        load_cases([cases_file])
    cases_file.write_text(json.dumps({**good, "suite": "other"}) + "\n", encoding="utf-8")
    with pytest.raises(EvalError, match="unknown suite 'other'"):
        load_cases([cases_file])
    cases_file.write_text(json.dumps({**good, "source": {"kind": "npm", "name": "x"}}) + "\n", encoding="utf-8")
    with pytest.raises(EvalError, match="needs version"):
        load_cases([cases_file])
    cases_file.write_text(json.dumps(good) + "\n", encoding="utf-8")
    assert load_cases([cases_file])[0].source["path"] == str((tmp_path / "src").resolve())


def test_archives_unpack_and_unsafe_zip_members_are_refused(tmp_path: Path) -> None:
    tarred = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(tarred, "w:gz") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("pkg-1.0/src/mod.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert (unpack_archive(tarred, tmp_path / "t") / "pkg-1.0/src/mod.py").read_bytes() == b"print('hi')\n"
    zipped = tmp_path / "evil.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("../escape.txt", "x")
    with pytest.raises(EvalError, match="unsafe member path"):
        unpack_archive(zipped, tmp_path / "z")
    assert not (tmp_path / "escape.txt").exists()


# --- a whole run ---------------------------------------------------------------------------------------------------
SHAPES = '''import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        """Compute the area enclosed by the circle from its radius."""
        return math.pi * self.radius ** 2


def perimeter_of_square(side):
    """Return the total length of the four edges of a square."""
    return 4 * side
'''
NETWORK = '''import socket


def open_connection(host, port, timeout):
    """Open a TCP socket to a remote host and wait at most timeout seconds for the handshake."""
    sock = socket.create_connection((host, port), timeout=timeout)
    return sock


def close_quietly(sock):
    """Close a socket and ignore any error raised while closing it."""
    try:
        sock.close()
    except OSError:
        pass
'''


def write_cases(tmp_path: Path) -> Path:
    source = tmp_path / "project"
    (source / "geo").mkdir(parents=True)
    (source / "geo" / "shapes.py").write_text(SHAPES, encoding="utf-8")
    (source / "net.py").write_text(NETWORK, encoding="utf-8")
    rows = [
        ("geo/shapes.py", 8, 10, (9, 9), "Compute the area enclosed by the circle from its radius."),
        ("geo/shapes.py", 13, 15, (14, 14), "Return the total length of the four edges of a square."),
        ("net.py", 4, 7, (5, 5), "Open a TCP socket to a remote host and wait at most timeout seconds."),
        ("net.py", 10, 15, (11, 11), "Close a socket and ignore any error raised while closing it."),
    ]
    lines = [json.dumps({"suite": "needle-docstring", "language": "python", "source": {"kind": "dir",
                                                                                        "path": "project"},
                         "path": p, "start_line": s, "end_line": e, "strip_lines": list(strip), "query": q,
                         "id": f"{p}:{s}"}) for p, s, e, strip, q in rows]
    lines.append(json.dumps({"suite": "file-localization", "source": {"kind": "dir", "path": "project"},
                             "query": "connection to a remote host hangs forever without a timeout",
                             "gold_files": ["net.py"], "id": "issue-1"}))
    cases_file = tmp_path / "cases.jsonl"
    cases_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cases_file


def test_whole_run_on_a_local_source(tmp_path: Path) -> None:
    cases = load_cases([write_cases(tmp_path)])
    options = EvalOptions(work=tmp_path / "work", k=10)
    run = run_evaluation(cases, options)
    report = as_json(run)

    copy = Path(run.sources[0].index) / "tree" / "geo" / "shapes.py"
    copied = copy.read_text(encoding="utf-8").splitlines()
    assert "area enclosed" not in copy.read_text(encoding="utf-8")
    assert copied[8] == "" and copied[9].strip() == "return math.pi * self.radius ** 2"
    assert "area enclosed" in (tmp_path / "project" / "geo" / "shapes.py").read_text(encoding="utf-8")

    needles = report["figures"]["needle-docstring"]
    assert set(needles["overall"]) == {"hybrid", "fts", "bm25-windows"}
    assert needles["overall"]["hybrid"]["n"] == 4
    assert needles["overall"]["hybrid"]["hit@5"] == 1.0  # four functions only: each must be in the top 5
    assert report["figures"]["file-localization"]["overall"]["hybrid"]["acc@1"] == 1.0
    assert run.sources[0].embedded > 0 and report["latency"]["n"] == 5

    again = run_evaluation(cases, options)  # (indexing code edited between the runs gives a new key: expected)
    assert again.sources[0].index == run.sources[0].index
    assert again.sources[0].embedded == 0  # the cached index is reused: nothing to embed


def test_a_source_that_cannot_be_prepared_is_skipped_not_fatal(tmp_path: Path) -> None:
    cases_file = tmp_path / "cases.jsonl"
    cases_file.write_text(json.dumps({"suite": "file-localization", "source": {"kind": "dir", "path": "gone"},
                                      "query": "anything", "gold_files": ["a.py"], "id": "lost-1"}) + "\n")
    run = run_evaluation(load_cases([cases_file]), EvalOptions(work=tmp_path / "work", k=10, embed=False))
    assert "lost-1" in run.skipped and "does not exist" in run.skipped["lost-1"]
    assert as_json(run)["skipped"] == run.skipped and not run.results


def test_the_benchmark_script_reports_a_bad_cases_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"suite": "needle-docstring"}\n', encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "eval_retrieval.py"), str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "bad.jsonl:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_figures_group_by_package_cases_file_and_overall() -> None:
    from devtools.evaluate.report import figures
    from devtools.evaluate.runner import CaseResult, EvalRun

    def result(origin: str, package: str, mode: str, rank: int | None) -> CaseResult:
        return CaseResult(id="c", suite="needle-docstring", origin=origin, package=package, mode=mode, rank=rank,
                          top="", seconds=0.01)

    run = EvalRun(EvalOptions(k=10, embed=False))
    run.results = [result("py", "click", "fts", 1), result("py", "click", "fts", None),
                   result("multi", "rxjs", "fts", 4), result("py", "click", "bm25-windows", 2),
                   result("py", "click", "bm25-windows", 1), result("multi", "rxjs", "bm25-windows", None)]
    table = figures(run)["needle-docstring"]
    assert list(table) == ["click", "rxjs", "file:py", "file:multi", "overall"]
    assert table["click"]["fts"]["hit@1"] == 0.5 and table["click"]["bm25-windows"]["hit@5"] == 1.0
    assert table["file:multi"]["fts"]["hit@5"] == 1.0 and table["file:multi"]["fts"]["hit@1"] == 0.0
    assert table["overall"]["fts"]["n"] == 3 and table["overall"]["fts"]["mrr@10"] == round((1 + 0.25) / 3, 3)


def test_the_index_code_of_a_git_revision_keys_the_copies_it_built() -> None:
    from devtools.evaluate.copies import index_code_fingerprint
    checkout = Path(__file__).resolve().parent.parent
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "repochat/index", "repochat/repo", "grammars"],
                             cwd=checkout).returncode != 0
    # HEAD's committed indexing code has the fingerprint of the code installed here, unless it was edited since.
    assert (index_code_fingerprint("HEAD") == index_code_fingerprint()) is not changed
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=checkout, capture_output=True,
                           text=True).stdout.split()[0]
    assert index_code_fingerprint(first) != index_code_fingerprint("HEAD")  # the indexer has changed since
    with pytest.raises(EvalError, match="no-such-revision"):
        index_code_fingerprint("no-such-revision")
