"""Shared helpers for the engine tests: the real default model (assembled once per test run) and small real git
repositories. Imported by tests/test_engine_*.py and tests/test_ask.py."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from repochat.config import Settings
from repochat.engine.models import REGISTRY, ensure_assembled

_MODEL_CACHE_NAME = "repochat-model-cache"


def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's model folder; conftest makes it the models/ of the (temporary) user cache too."""
    return tmp_path_factory.getbasetemp() / _MODEL_CACHE_NAME / "models"


def default_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model assembled from its installed packages into this test run's temp dir (once per run)."""
    return ensure_assembled(REGISTRY[0], shared_models_dir(tmp_path_factory))


def engine_settings(cache_dir: Path, **changes: Any) -> Settings:
    """Settings whose model is the assembled default model in cache_dir, with small pages for fast tests. The
    machine's prefill speed never decides a test's plan (interactive_prefill_s 0) unless a test asks for it."""
    base = dict(cache_dir=str(cache_dir), page_tokens=256, max_answer_tokens=48, threads=0,
                memory=4 * 1024**3, interactive_prefill_s=0)
    base.update(changes)
    return Settings(**base)


def git(root: Path, *args: str, when: int | None = None) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", HOME=str(root))
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, files: dict[str, str], start_time: int = 1_700_000_000) -> Path:
    """A git repository with one commit per file, in the given order (so the first file is the most stable)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for offset, (name, text) in enumerate(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        git(root, "add", name)
        git(root, "commit", "-q", "-m", f"add {name}", when=start_time + offset * 1000)
    return root


_GGUF_TYPES = {int: 4, float: 6, bool: 7, str: 8}


def write_gguf_header(path: Path, metadata: dict[str, Any]) -> Path:
    """A syntactically valid GGUF with the given metadata and no tensors (for planner and loader error tests)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)))
    for key, value in metadata.items():
        out += _gguf_string(key)
        if isinstance(value, list):
            out += struct.pack("<IIQ", 9, _GGUF_TYPES[type(value[0])], len(value))
            for item in value:
                out += _gguf_scalar(item)
        else:
            out += struct.pack("<I", _GGUF_TYPES[type(value)]) + _gguf_scalar(value)
    path.write_bytes(bytes(out))
    return path


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_scalar(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<?", value)
    if isinstance(value, int):
        return struct.pack("<I", value)
    if isinstance(value, float):
        return struct.pack("<f", value)
    return _gguf_string(value)


_JOBS = "\n".join(
    ['"""Job definitions."""', "", "from dataclasses import dataclass, field", "", ""]
    + [line for n in range(8) for line in (
        "@dataclass", f"class Job{n}:", f'    """Job kind {n}: runs step {n} of the pipeline."""', "    id: str",
        "    attempts: int = 0", "    tags: list[str] = field(default_factory=list)", "",
        "    def run(self) -> str:", f'        return f"step {n} done for {{self.id}}"', "", "")]) + "\n"
# A small job-queue package: the repository of the ask and pieces tests.
TASKQ_FILES = {
    "taskq/jobs.py": _JOBS,
    "taskq/results.py": (
        '"""Results of finished jobs."""\n\n\nclass ResultStore:\n    def __init__(self):\n'
        "        self._results = {}\n\n    def put(self, job_id, value):\n        self._results[job_id] = value\n\n"
        "    def get(self, job_id, default=None):\n        return self._results.get(job_id, default)\n"),
    "taskq/queue.py": (
        '"""A priority queue of jobs ordered by the time they may run."""\n\nimport heapq\nimport itertools\n\n\n'
        "class Queue:\n    def __init__(self):\n        self._heap = []\n        self._counter = itertools.count()\n\n"
        "    def push(self, job, run_at):\n        heapq.heappush(self._heap, (run_at, next(self._counter), job))\n\n"
        "    def pop_due(self, now):\n        if self._heap and self._heap[0][0] <= now:\n"
        "            return heapq.heappop(self._heap)[2]\n        return None\n\n"
        "    def __len__(self):\n        return len(self._heap)\n"),
    "taskq/worker.py": (
        '"""The worker loop: take due jobs, run them, store results, retry failures."""\n\n'
        "from .queue import Queue\nfrom .results import ResultStore\n\nMAX_RETRIES = 3\n\n\n"
        "def run_once(queue: Queue, results: ResultStore, now: float) -> bool:\n"
        "    job = queue.pop_due(now)\n    if job is None:\n        return False\n    try:\n"
        "        results.put(job.id, job.run())\n    except Exception:\n        job.attempts += 1\n"
        "        if job.attempts < MAX_RETRIES:\n            queue.push(job, now + 2 ** job.attempts)\n"
        "    return True\n"),
    "README.md": "# taskq\n\nA tiny job queue: `Queue` orders jobs by run time, `run_once` runs one due job.\n",
}
TASKQ_QUESTION = "Which function retries a failed job, and how many times at most?"


@dataclass
class Cold:
    """A first ask about the taskq repository, with an empty KV cache."""

    repo: Path
    settings: Settings
    result: Any  # repochat.answer.ask.AskResult
    progress: list[tuple[str, int, int]]


def cold_ask(engine: Any, base: Path, effort: str = "auto", **changes: Any) -> Cold:
    """Ask TASKQ_QUESTION about a fresh taskq repository under ``base`` with nothing cached (not even in memory)."""
    from repochat.answer.ask import ask

    repo = make_repo(base / "repo", TASKQ_FILES)
    settings = engine_settings(base / "cache", model=str(engine.model_path), threads=1, **changes)
    progress: list[tuple[str, int, int]] = []
    engine.close_context()
    result = ask(repo, TASKQ_QUESTION, settings, engine=engine, effort=effort,
                 on_progress=lambda *p: progress.append(p))
    return Cold(repo, settings, result, progress)


def fresh_copy(cold: Cold, tmp_path: Path) -> tuple[Path, Settings]:
    """The cold ask's repository and KV cache, copied so that a test may change them."""
    repo = tmp_path / "repo"
    shutil.copytree(cold.repo, repo, symlinks=True)
    shutil.copytree(Path(cold.settings.cache_dir) / "kv", tmp_path / "cache" / "kv")
    return repo, dataclasses.replace(cold.settings, cache_dir=str(tmp_path / "cache"))


def saved_kv_files(cache: Path) -> list[Path]:
    """KV pages or pieces written completely (each is written to a .tmp- file first, then renamed)."""
    return [path for path in cache.rglob("*.kvp") if not path.name.startswith(".tmp-")]


def kill_when(command: list[str], env: dict[str, str], ready: Callable[[], bool], what: str) -> None:
    """Run ``command`` in a session of its own and kill -9 all of it (a guard and its child) once ``ready()``
    holds (10 minutes at most, or until it ends by itself)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    while not ready() and process.poll() is None:
        assert time.monotonic() < deadline, f"no {what} within 10 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
