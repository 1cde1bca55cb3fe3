"""A native crash is never the user's only output.

- The CPU path: llama.cpp's extra buffer types (whose AMX path segfaults) are off on AMX CPUs unless asked for.
- The first-use probe runs the real default model in a child process and remembers the outcome; a path recorded as
  crashed is not tried again ("auto" falls back to plain weights; "on" is a one-line error with exit status 2).
- A command whose process dies of a signal (a real SIGSEGV sent to it) ends with one line: exit 2 for `ask`, the
  commit let through for `review` unless --strict.
- The MCP server answers an ask whose engine crashed with a tool error and goes on serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from mcp import ClientSession, StdioServerParameters, stdio_client

from engine_support import default_model_path, make_repo
from repochat.config import Settings
from repochat.engine import probe
from repochat.engine.cpu import describe_cpu_path, use_extra_buffers
from repochat.errors import EngineCrash

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"
AMX_XEON = frozenset({"avx2", "avx512f", "amx_tile", "amx_int8", "amx_bf16"})
EPYC = frozenset({"avx2", "avx512f", "fma"})


def test_extra_buffers_are_off_on_amx_cpus_unless_asked_for() -> None:
    assert use_extra_buffers("auto", AMX_XEON) is False
    assert use_extra_buffers("auto", EPYC) is True
    assert use_extra_buffers("on", AMX_XEON) is True
    assert use_extra_buffers("off", EPYC) is False
    assert describe_cpu_path(False, AMX_XEON) == "AVX512F with AMX: plain weights (AMX path off: it crashes in llama.cpp)"
    assert describe_cpu_path(True, EPYC) == "AVX512F: repacked weights"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_model_path(tmp_path_factory)


def record_crash(settings: Settings, model: Path, extra_buffers: bool) -> None:
    """What a probe that crashed leaves in the cache dir."""
    key = probe.probe_key(model, settings.gpu_layers, extra_buffers)
    path = Path(settings.cache_dir) / probe.PROBE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({key: "crashed with SIGSEGV"}))
    probe._known.clear()


@pytest.mark.model
def test_the_probe_runs_the_model_in_a_child_and_remembers_it(model: Path, tmp_path: Path) -> None:
    settings = Settings(cache_dir=str(tmp_path), model=str(model))
    probe._known.clear()
    stages: list[tuple[str, int, int]] = []
    chosen = probe.checked_extra_buffers(model, settings, lambda *stage: stages.append(stage))
    assert chosen == use_extra_buffers("auto")
    assert stages == [("probe", 0, 1), ("probe", 1, 1)]
    assert list(json.loads((tmp_path / probe.PROBE_FILE).read_text()).values()) == ["ok"]
    probe._known.clear()
    stages.clear()
    assert probe.checked_extra_buffers(model, settings, lambda *stage: stages.append(stage)) == chosen
    assert stages == []  # remembered on disk: no second child


@pytest.mark.model
def test_a_path_that_crashed_is_not_tried_again(model: Path, tmp_path: Path) -> None:
    settings = Settings(cache_dir=str(tmp_path), model=str(model))
    preferred = use_extra_buffers("auto")
    record_crash(settings, model, preferred)
    if preferred:  # auto gives way to plain weights, checked for real in a child
        assert probe.checked_extra_buffers(model, settings) is False
    else:
        with pytest.raises(EngineCrash, match="llama.cpp crashed with SIGSEGV running .*plain weights"):
            probe.checked_extra_buffers(model, settings, lambda *stage: pytest.fail("probed again"))


@pytest.mark.model
def test_a_crash_of_the_path_asked_for_is_one_line_and_exit_2(model: Path, tmp_path: Path) -> None:
    settings = Settings(cache_dir=str(tmp_path), model=str(model))
    record_crash(settings, model, True)
    env = {**os.environ, "REPOCHAT_CACHE_DIR": str(tmp_path), "REPOCHAT_CPU_EXTRA_BUFFERS": "on"}
    done = subprocess.run([sys.executable, "-m", "repochat", "ask", "-C", str(DEMO), "--model", str(model),
                           "--effort", "high", "where are results stored?"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith("repochat: error: llama.cpp crashed with SIGSEGV"), lines
    assert 'cpu_extra_buffers = "off"' in lines[0]


def guarded_child(parent: int, deadline: float) -> int:
    """The pid of the process `repochat` started to run the command (its only child)."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent:
                    return int(entry.name)
        time.sleep(0.02)
    raise AssertionError("repochat started no child process")


def crash_command(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `repochat ARGS` and kill the process doing the work with a real SIGSEGV."""
    env = {**os.environ, "REPOCHAT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("REPOCHAT_GUARDED_CHILD", None)
    process = subprocess.Popen([sys.executable, "-m", "repochat", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    os.kill(guarded_child(process.pid, time.monotonic() + 30), signal.SIGSEGV)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def test_a_segfault_during_ask_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = crash_command(["ask", "-C", str(DEMO), "how does the worker retry?"], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the model engine crashed (SIGSEGV) during `repochat ask`, no answer" in lines[0]


def test_a_segfault_during_review_lets_the_commit_through_unless_strict(tmp_path: Path) -> None:
    lenient = crash_command(["review", "--staged", "-C", str(DEMO)], tmp_path)
    assert lenient.returncode == 0 and "crashed (SIGSEGV) during `repochat review`, commit not reviewed" in \
        lenient.stderr
    strict = crash_command(["review", "--staged", "--strict", "-C", str(DEMO)], tmp_path)
    assert strict.returncode == 2 and "crashed (SIGSEGV)" in strict.stderr


@pytest.mark.model
def test_the_mcp_server_survives_an_engine_crash_as_a_tool_error(model: Path, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"worker.py": "def retry(job):\n    return job.run()\n"})
    settings = Settings(cache_dir=str(tmp_path / "cache"), model=str(model))
    record_crash(settings, model, True)
    env = {**os.environ, "REPOCHAT_MODEL": str(model), "REPOCHAT_CACHE_DIR": settings.cache_dir,
           "REPOCHAT_CPU_EXTRA_BUFFERS": "on", "REPOCHAT_EMBEDDINGS": "0"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "repochat", "serve", "-C", str(root)],
                                   env=env)
    with open(tmp_path / "server.log", "w") as errlog, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(stdio_client(params, errlog=errlog)) as (read, write):
            with portal.wrap_async_context_manager(ClientSession(read, write)) as session:
                portal.call(session.initialize)
                crashed = portal.call(lambda: session.call_tool("ask", {"question": "what does retry do?"}))
                assert crashed.is_error and "crashed with SIGSEGV" in crashed.content[0].text
                found = portal.call(lambda: session.call_tool("search_code", {"query": "retry"}))
                assert not found.is_error and "worker.py" in found.content[0].text
