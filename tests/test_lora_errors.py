"""A --lora file that is not an adapter: one error line from the real CLI and the real model, nothing after it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repochat.config import Settings
from repochat.engine.models import resolve_model

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"


@pytest.mark.model
def test_a_model_given_as_lora_is_one_error_line_without_a_traceback(tmp_path: Path) -> None:
    model = resolve_model(Settings())  # a GGUF, but a whole model rather than an adapter
    root = tmp_path / "demo"
    shutil.copytree(DEMO, root)
    env = {**os.environ, "REPOCHAT_CACHE_DIR": str(tmp_path / "cache"), "REPOCHAT_MODEL": str(model),
           "REPOCHAT_EMBEDDINGS": "0"}
    done = subprocess.run([sys.executable, "-m", "repochat", "ask", "--repo", str(root), "--lora", str(model),
                           "What does the queue do?"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode != 0 and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower() or "exception" in line.lower()]
    assert len(errors) == 1 and "LoRA adapter" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
