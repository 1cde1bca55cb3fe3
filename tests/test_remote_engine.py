"""The remote engine against a real OpenAI-compatible server: llama-cpp-python's own (`python -m llama_cpp.server`,
extra [server]) with the default model, started on 127.0.0.1 by the fixture below, with an API key.

Covered: an ask on the demo repository streamed with citations; a review whose verdict and findings the server
constrains with repochat's grammar; a warm second ask that the server answers from its prefix cache (its own log
says how many tokens it reused: its API does not report them) with a first token sooner; the one-line errors.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from click.testing import CliRunner

from engine_support import default_model_path, git
from repochat.answer.ask import ask
from repochat.cli.main import cli
from repochat.config import Settings
from repochat.engine.remote import ContextTooLong, RemoteEngine, ServerAuthError, ServerUnavailable, cached_tokens
from repochat.index.indexer import update_index
from repochat.review.run import review

pytestmark = pytest.mark.model
KEY = "test-key-7f3a"
SERVER_CONTEXT = 4096
DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"
_PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit")


@dataclasses.dataclass
class Server:
    url: str
    log: Path

    def prefix_hits(self) -> list[int]:
        """What the server says it reused, request by request (its log; the API does not carry it)."""
        return [int(n) for n in _PREFIX_HIT.findall(self.log.read_text(errors="replace"))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = default_model_path(tmp_path_factory)
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx", str(SERVER_CONTEXT),
             "--host", "127.0.0.1", "--port", str(port), "--api_key", KEY, "--n_threads", "2"],
            stdout=sink, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_ready(url, process)
        yield Server(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the llama-cpp-python server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the llama-cpp-python server did not start")


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("REPOCHAT_API_KEY", KEY)


def remote_settings(server: Server, cache: Path, **changes: object) -> Settings:
    base = dict(cache_dir=str(cache), engine=server.url, engine_context=SERVER_CONTEXT, max_answer_tokens=48,
                embeddings=False, retrieval_tokens=768)
    base.update(changes)
    return Settings(**base)  # type: ignore[arg-type]


def test_the_probe_finds_llama_cpp_python_and_counts_with_its_tokenizer(server: Server, tmp_path: Path) -> None:
    with RemoteEngine(server.url, remote_settings(server, tmp_path, engine_context=0)) as engine:
        assert engine.server == "llama-cpp-python"
        # its tokenizer, not the local estimate: Qwen's BPE writes a long identifier in a few tokens, and adds BOS
        assert engine.count_tokens("pop_ready") != engine.count_tokens("pop_ready" * 3)
        with pytest.raises(Exception, match="does not report its context length: set engine_context"):
            engine.context_limit()


def test_ask_on_the_demo_streams_an_answer_with_citations(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns(".repochat"))
    settings = remote_settings(server, tmp_path / "cache")
    update_index(root, settings)
    streamed: list[str] = []
    result = ask(root, "How does the worker retry a task that failed?", settings, effort="low",
                 on_text=streamed.append)
    assert len(streamed) > 3 and "".join(streamed) == result.answer  # chunk by chunk, as the server sent them
    assert result.coverage["mode"] == "retrieval" and result.coverage["server"] == "llama-cpp-python"
    assert result.citations and all(c["valid"] for c in result.citations), result.answer
    assert result.coverage["files_retrieved"] >= 1 and result.coverage["answer_tokens"] > 0


def test_a_warm_second_ask_is_served_from_the_server_prefix_cache(server: Server, make_repo, tmp_path: Path) -> None:
    files = {f"calc/op{i}.py": f"def op{i}(a, b):\n    \"\"\"Operation {i}.\"\"\"\n    return a * {i} + b\n\n"
             for i in range(12)}
    files["calc/rates.py"] = "TAX_RATE = 0.19\n\ndef with_tax(amount):\n    return amount * (1 + TAX_RATE)\n"
    root = make_repo(files)
    settings = remote_settings(server, tmp_path / "cache")
    cold = ask(root, "What tax rate does with_tax apply?", settings, effort="high")
    hits_before = len(server.prefix_hits())
    warm = ask(root, "Which file defines op7?", settings, effort="high")
    assert cold.coverage["mode"] == warm.coverage["mode"] == "whole"
    reused = server.prefix_hits()[hits_before:]
    repository = warm.coverage["repo_tokens"]
    assert reused and reused[-1] >= repository, (reused, repository)  # the whole repository came from the cache
    assert warm.coverage["server_cached_tokens"] is None and warm.coverage["cache"] == "unreported"
    assert warm.coverage["ttft_s"] * 2 < cold.coverage["ttft_s"], (cold.coverage["ttft_s"], warm.coverage["ttft_s"])


def test_review_runs_through_the_server_constrained_output(server: Server, make_repo, tmp_path: Path) -> None:
    root = make_repo({"shop/cart.py": "def total(prices):\n    result = 0\n    for price in prices:\n"
                                      "        result += price\n    return result\n"})
    (root / "shop/cart.py").write_text("def total(prices):\n    result = 0\n    for price in prices[1:]:\n"
                                       "        result -= price\n    return result\n")
    git(root, "add", "-A")
    report = review(root, remote_settings(server, tmp_path / "cache"), effort="low")
    assert not report.notice, report.notice
    assert report.stats["server"] == "llama-cpp-python"
    # the grammar allows only these words: free text would be a sentence
    assert report.stats["verdict"] in ("buggy", "wrong", "incorrect", "correct", "fine")
    assert report.dropped == 0  # the grammar let findings name only lines that were shown in reviewed files
    if report.stats["verdict"] in ("buggy", "wrong", "incorrect"):
        assert report.findings and all(f.path == "shop/cart.py" for f in report.findings)


def _cli_ask(root: Path, url: str, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["ask", "What does with_tax do?", "-C", str(root), "--engine", url,
                                      "--effort", "high"], env=env)
    return result.exit_code, result.stderr if hasattr(result, "stderr") else result.output


def test_a_server_that_is_down_is_one_line(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "def with_tax(x):\n    return x\n"})
    with pytest.raises(ServerUnavailable, match="not reachable"):
        ask(root, "What does with_tax do?", Settings(cache_dir=str(tmp_path), engine=f"http://127.0.0.1:{_free_port()}/v1"),
            effort="high")
    code, output = _cli_ask(root, f"http://127.0.0.1:{_free_port()}/v1", {"REPOCHAT_CACHE_DIR": str(tmp_path)})
    lines = output.strip().splitlines()
    assert code == 1 and lines[-1].startswith("repochat: error: the engine server at") and "not reachable" in lines[-1]


def test_a_wrong_api_key_is_one_line(server: Server, make_repo, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo({"a.py": "def with_tax(x):\n    return x\n"})
    monkeypatch.setenv("REPOCHAT_API_KEY", "not-the-key")
    with pytest.raises(ServerAuthError, match="HTTP 401"):
        ask(root, "What does with_tax do?", remote_settings(server, tmp_path), effort="high")
    code, output = _cli_ask(root, server.url, {"REPOCHAT_CACHE_DIR": str(tmp_path), "REPOCHAT_API_KEY": "nope"})
    assert code == 1 and output.strip().splitlines()[-1].startswith("repochat: error:") and "401" in output


def test_context_too_long_is_one_line_from_the_plan_and_from_the_server(server: Server, make_repo,
                                                                        tmp_path: Path) -> None:
    root = make_repo({f"m{i}.py": "".join(f"def f{i}_{j}(v):\n    return v * {j}\n\n" for j in range(60))
                      for i in range(6)})
    question = "Explain every function. " * 500  # ~2,500 tokens: more than engine_context alone
    with pytest.raises(ContextTooLong, match="the question is too long"):  # the server's count, before sending
        ask(root, question, remote_settings(server, tmp_path, engine_context=1024), effort="high")
    # engine_context claims more than the server has: the server refuses, in its own words, in one line
    with pytest.raises(ContextTooLong, match="maximum context length is 4096") as refused:
        ask(root, "What does f1_2 return?", remote_settings(server, tmp_path, engine_context=100_000),
            effort="high")
    assert "\n" not in str(refused.value)


def test_cached_tokens_are_read_where_each_server_reports_them() -> None:
    """The fields as vLLM / OpenAI (usage details) and llama-server (timings) send them in a last stream chunk."""
    assert cached_tokens({"usage": {"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": 896}}}) == 896
    assert cached_tokens({"timings": {"cache_n": 1500, "prompt_n": 12}}) == 1500
    assert cached_tokens({"usage": {"prompt_tokens": 900}}) is None
