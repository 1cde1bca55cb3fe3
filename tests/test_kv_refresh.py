"""The background refresh of the KV the next ask assembles (pieces, or prefix pages): real default model, real git
repositories, real page store on disk, and the real `repochat serve` subprocess driven through the SDK's stdio
client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from anyio.from_thread import start_blocking_portal
from mcp import ClientSession, StdioServerParameters, stdio_client

from repochat.config import Settings
from repochat.engine.models import resolve_model
from repochat.engine.session import Engine
from repochat.live.kv_refresh import EngineTurns, KvRefresher, warm_repository, warm_whole_repository

REFRESH_DEADLINE_S = 240.0  # prefill on two shared cores; generous so that a busy machine does not fail the test


def _module(number: int) -> str:
    """A file of a few hundred tokens, different for every number."""
    body = "".join(f"    total_{number}_{step} = value * {step + number} + offset_{step}\n" for step in range(12))
    return (f'"""Module {number}: arithmetic helpers."""\n\n\ndef compute_{number}(value, offset_0=0):\n'
            f"{body}    return value\n")


def _eventually(check: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def test_a_waiting_request_takes_the_engine_before_background_work() -> None:
    turns = EngineTurns()
    with turns.foreground():  # a running request: background work gets no turn
        with turns.background(timeout=0.2) as granted:
            assert not granted
    entered = threading.Event()

    def request() -> None:
        with turns.foreground():
            entered.set()

    with turns.background(timeout=1) as granted:
        assert granted
        waiter = threading.Thread(target=request)
        waiter.start()
        assert _eventually(turns.wanted, 5), "background work is not told that a request waits"
        assert not entered.wait(0.2), "the request got in while background work held the engine"
    assert entered.wait(5), "the request did not get the engine when background work gave it up"
    waiter.join(5)
    assert not turns.wanted()


@pytest.fixture(scope="module")
def model_path() -> Path:
    return resolve_model(Settings())  # the (temporary) user cache: the run's shared model folder (conftest)


@pytest.mark.model
def test_the_refresh_gives_way_to_a_request_and_then_finishes(make_repo: Callable[..., Path], tmp_path: Path,
                                                              model_path: Path) -> None:
    """No ask has made a context yet: the refresh computes each file's piece alone, in a small context, and saves
    it; a request waiting stops it between two pieces."""
    root = make_repo({f"pkg/mod_{n}.py": _module(n) for n in range(8)})
    settings = Settings(cache_dir=str(tmp_path / "kv"), max_answer_tokens=16, embeddings=False,
                        model=str(model_path))
    with Engine(model_path, settings) as engine:
        refresher = KvRefresher(root, settings, lambda: engine).start()
        try:
            refresher.request()
            assert _eventually(lambda: refresher.state.state == "running" and refresher.state.pages_done >= 2,
                               REFRESH_DEADLINE_S), refresher.status()
            asked = time.monotonic()
            with refresher.turns.foreground():  # what a client request does before it uses the engine
                waited = time.monotonic() - asked
                stopped_at = dict(refresher.status())
                pieces_on_disk = len(list((tmp_path / "kv").rglob("*.kvp")))
            assert stopped_at["state"] == "paused" and stopped_at["refreshes"] == 0, stopped_at
            assert stopped_at["pages_done"] < stopped_at["pages_total"] == 8, "the refresh did not give way"
            assert pieces_on_disk == stopped_at["pages_done"] + 1  # every piece done is saved, and the head
            assert refresher.wait_idle(REFRESH_DEADLINE_S) and refresher.state.refreshes == 1, refresher.status()
            last = refresher.state.last
            assert last is not None and (last["mode"], last["pieces"]) == ("whole", 9), last
            assert last["pieces_cached"] == stopped_at["pages_done"] + 1 and last["pieces_computed"] == \
                8 - stopped_at["pages_done"], last  # it went on from the pieces saved before it gave way
            with refresher.turns.foreground():  # what the next ask loads is now entirely on disk
                again = warm_whole_repository(root, settings, engine)
        finally:
            refresher.stop()
    assert again is not None and again.prefilled_tokens == 0 and again.pages_restored == again.pages_total
    print(f"request waited {waited:.2f}s for the refresh to give way after piece {stopped_at['pages_done']} "
          f"of {stopped_at['pages_total']}")


@pytest.mark.model
def test_prefix_pages_are_refreshed_in_the_context_as_before(make_repo: Callable[..., Path], tmp_path: Path,
                                                             model_path: Path) -> None:
    """kv_pieces off: the whole-repository page chain, prefilled where an ask would, kept in memory."""
    root = make_repo({f"pkg/mod_{n}.py": _module(n) for n in range(3)})
    settings = Settings(cache_dir=str(tmp_path / "kv"), page_tokens=128, max_answer_tokens=16, embeddings=False,
                        model=str(model_path), kv_pieces=False)
    with Engine(model_path, settings) as engine:
        report = warm_repository(root, settings, engine)
        again = warm_whole_repository(root, settings, engine)
    assert (report.kv_unit, report.mode) == ("page", "whole") and report.computed == report.pieces > 1, report
    assert again is not None and again.pages_in_memory == again.pages_total and again.prefilled_tokens == 0


# --- the server: ask, edit, wait for the refresh, ask again --------------------------------------------------------
SERVE = [sys.executable, "-m", "repochat", "serve"]
QUESTION = {"question": "What does compute_1 return?"}


def _server_environment(base: Path, model_path: Path) -> dict[str, str]:
    return {**os.environ, "REPOCHAT_MODEL": str(model_path), "REPOCHAT_CACHE_DIR": str(base / "kv-cache"),
            "REPOCHAT_PAGE_TOKENS": "128", "REPOCHAT_MAX_ANSWER_TOKENS": "24", "REPOCHAT_EMBEDDINGS": "0",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.fixture
def serving(make_repo: Callable[..., Path], tmp_path: Path,
            model_path: Path) -> Iterator[Callable[[str, dict[str, Any] | None], dict[str, Any]]]:
    root = make_repo({f"calc/mod_{n}.py": _module(n) for n in range(4)})
    params = StdioServerParameters(command=SERVE[0], args=[*SERVE[1:], "-C", str(root)],
                                   env=_server_environment(tmp_path, model_path))
    with open(tmp_path / "server.log", "w", encoding="utf-8") as errlog, start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(stdio_client(params, errlog=errlog)) as (read, write):
            with portal.wrap_async_context_manager(ClientSession(read, write)) as session:
                portal.call(session.initialize)

                def call(tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
                    result = portal.call(lambda: session.call_tool(tool, arguments or {}))
                    assert not result.is_error, result.content
                    return json.loads(result.content[0].text)

                call.root = root  # type: ignore[attr-defined]
                yield call


@pytest.mark.model
def test_after_an_edit_the_next_ask_only_decodes_its_question(
        serving: Callable[[str, dict[str, Any] | None], dict[str, Any]]) -> None:
    root: Path = serving.root  # type: ignore[attr-defined]
    first = serving("ask", QUESTION)["coverage"]
    assert first["mode"] == "whole" and first["prefilled_tokens"] > 0, first
    refreshed: dict[str, Any] = {}

    def refresh_idle(after: int) -> Callable[[], bool]:
        def check() -> bool:
            refreshed.update(serving("index_status", None)["kv_refresh"])
            return refreshed["refreshes"] >= after and refreshed["state"] == "idle"
        return check

    # The server's first index update may end during the first ask; the refresh it asks for then finds every page
    # in memory. Let it finish, so that the edit below is what the counted refresh is about.
    assert _eventually(refresh_idle(0), REFRESH_DEADLINE_S, step=1.0), refreshed
    before = refreshed["refreshes"]
    (root / "calc/mod_1.py").write_text(_module(1).replace("return value", "return value * 2"), encoding="utf-8")
    (root / "calc/mod_9.py").write_text(_module(9), encoding="utf-8")
    assert _eventually(refresh_idle(before + 1), REFRESH_DEADLINE_S, step=1.0), refreshed
    assert refreshed["last"]["computed_tokens"] > 0, refreshed  # the refresh, not the next ask, did the work
    assert refreshed["last"]["pieces_computed"] == 2, refreshed  # the edited file and the new one, nothing else

    second = serving("ask", QUESTION)["coverage"]
    prefix_tokens = second["context_tokens"] - second["question_tokens"] - second["answer_tokens"]
    assert second["files_in_context"] == first["files_in_context"] + 1, second  # mod_9.py is in the prefix
    assert second["cache"] == "hit" and second["prefilled_tokens"] == 0, second
    assert second["restored_tokens"] == prefix_tokens, second
    print(f"refresh: {refreshed['last']}; second ask {second['total_s']}s, {second['restored_tokens']} tokens reused, "
          f"only the {second['question_tokens']} question tokens decoded")


def _json_lines(process: subprocess.Popen[str], count: int, timeout: float) -> list[dict[str, Any]]:
    """The first ``count`` lines of the process's stdout as JSON, read in a thread so that a silence fails the test
    instead of hanging it."""
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert process.stdout is not None
        while len(lines) < count:
            line = process.stdout.readline()
            if not line:
                return
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert len(lines) == count, f"expected {count} lines, got {lines}"
    return lines


@pytest.mark.model
def test_watch_warm_kv_fills_the_page_store_that_the_next_ask_restores(
        make_repo: Callable[..., Path], tmp_path: Path, model_path: Path) -> None:
    root = make_repo({"calc/mod_0.py": _module(0), "calc/mod_1.py": _module(1)})
    env = _server_environment(tmp_path, model_path)
    command = [*SERVE[:-1], "watch", "-C", str(root), "--json", "--warm-kv"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        lines = _json_lines(process, 2, REFRESH_DEADLINE_S)  # the first update, then the refresh
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert lines[0]["parsed"] == 2, lines
    warmed = lines[1]["kv_refresh"]
    assert (warmed["mode"], warmed["kv_unit"], warmed["pieces"]) == ("whole", "piece", 3), lines  # head + 2 files
    assert warmed["pieces_computed"] == warmed["pieces"] and warmed["computed_tokens"] == warmed["tokens"], lines
    status = subprocess.run([*SERVE[:-1], "status", "-C", str(root), "--json"], capture_output=True, text=True,
                            env=env, check=True)
    plan = json.loads(status.stdout)["plan"]
    assert (plan["cache"], plan["pages_cached"]) == ("hit", warmed["pieces"]), plan
