"""The command line: --json output, one-line errors with non-zero exits, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from repochat.cli.main import cli
from repochat.index.schema import FOLDER

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("repochat: error:") and fragment in lines[0], result.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "demo"
    shutil.copytree(DEMO, root)
    (root / "logo.bin").write_bytes(b"\x00\x01\x02binary")
    (root / ".env").write_text("SECRET=1\n")
    result = run("index", str(root), "--json")
    assert result.exit_code == 0, result.output
    return root


def test_index_json_summary(demo: Path) -> None:
    result = run("index", str(demo), "--json", "--no-embed")
    summary = json.loads(result.output)
    assert summary["files"] == 6 and summary["parsed"] == 0 and summary["unchanged"] == 6
    assert summary["skipped"] == {"binary": 1, "secret": 1}


def test_search_json(demo: Path) -> None:
    result = run("search", "exponential back-off", "-C", str(demo), "--json", "-k", "3")
    data = json.loads(result.output)
    assert len(data["results"]) == 3
    assert data["results"][0]["path"] == "taskq/worker.py"
    assert {"path", "start_line", "end_line", "symbol", "score", "text"} <= set(data["results"][0])


def test_symbols_and_map_json(demo: Path) -> None:
    data = json.loads(run("symbols", "ResultStore", "-C", str(demo), "--json").output)
    assert [d["path"] for d in data["definitions"]] == ["taskq/results.py"]
    assert "taskq/worker.py" in {r["path"] for r in data["references"]}
    data = json.loads(run("map", "-C", str(demo), "--tokens", "200", "--json").output)
    assert 0 < data["tokens"] <= 200 and "taskq/" in data["map"]


def test_status_json_counts_skips(demo: Path) -> None:
    data = json.loads(run("status", "-C", str(demo), "--json").output)
    assert data["index"]["files"] == 5 and data["index"]["chunks"] > 5  # logo.bin was read, found binary
    assert data["skipped"] == {"binary": 1, "secret": 1}


def test_missing_path_is_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(run("index", str(tmp_path / "missing")), "no such directory")
    assert_one_line_error(run("search", "x", "-C", str(tmp_path / "missing")), "no such directory")


def test_search_without_index_says_what_to_do(tmp_path: Path) -> None:
    assert_one_line_error(run("search", "anything", "-C", str(tmp_path)), "repochat index")


def test_corrupt_index_reported_then_rebuilt(demo: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(demo, root)
    (root / ".repochat" / FOLDER / "meta.json").write_text("{not json")
    assert_one_line_error(run("search", "job", "-C", str(root)), "corrupt")
    result = run("index", str(root), "--json", "--no-embed")
    assert json.loads(result.output)["notice"].startswith("rebuilt")
    assert run("search", "job", "-C", str(root), "--json", "--mode", "fts").exit_code == 0


def test_bad_config_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "repochat.toml").write_text("max_file_size = [oops\n")
    assert_one_line_error(run("index", str(tmp_path)), "invalid TOML")
    (tmp_path / "repochat.toml").write_text("max_fiel_size = 10\n")
    assert_one_line_error(run("index", str(tmp_path)), "unknown setting 'max_fiel_size'")
    (tmp_path / "repochat.toml").write_text("max_file_size = 'lots'\n")
    assert_one_line_error(run("index", str(tmp_path)), "not a size")


@pytest.mark.parametrize("config, fragment", [
    ("page_tokens = 0", "page_tokens must be at least 16, not 0"),
    ("page_tokens = -5", "page_tokens must be at least 16"),
    ("threads = -1", "threads must be at least 0, not -1"),
    ("memory = -5", "memory must be at least 0"),
    ('fail_on = "catastrophe"', "fail_on must be one of error, warning, info, never"),
    ('kv_type = "q2"', "kv_type must be one of"),
    ('cpu_extra_buffers = "maybe"', "cpu_extra_buffers must be one of auto, on, off"),
    ("max_stale_share = 2", "max_stale_share must be between 0 and 1"),
])
def test_out_of_range_settings_are_one_line_errors(tmp_path: Path, config: str, fragment: str) -> None:
    (tmp_path / "repochat.toml").write_text(config + "\n")
    assert_one_line_error(run("status", "-C", str(tmp_path)), fragment)


def test_a_tool_table_that_is_not_a_table_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool]\nrepochat = 5\n")
    assert_one_line_error(run("status", "-C", str(tmp_path)), "[tool.repochat] must be a table")


def test_a_relative_index_dir_is_taken_from_the_repository_root(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    shutil.copytree(DEMO, root)
    (root / "repochat.toml").write_text('index_dir = "build/idx"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run("index", str(root), "--no-embed").exit_code == 0
    assert (root / "build" / "idx").is_dir() and not (elsewhere / "build").exists()
    assert json.loads(run("search", "retry", "-C", str(root), "--json").output)["results"]


def test_an_index_dir_that_cannot_be_created_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "blocker").write_text("a file where a folder should be\n")
    (tmp_path / "repochat.toml").write_text('index_dir = "blocker/idx"\n')
    result = CliRunner().invoke(cli, ["index", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("repochat: error:") and "blocker" in lines[0], result.output


def test_unknown_search_mode_is_rejected(demo: Path) -> None:
    result = run("search", "x", "-C", str(demo), "--mode", "magic")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_question_of_megabytes_is_refused_before_any_work(demo: Path) -> None:
    result = CliRunner().invoke(cli, ["ask", "-C", str(demo), "why " * 250_000])
    assert_one_line_error(result, "the question is too long: 1,000,000 characters (at most 32,000)")
