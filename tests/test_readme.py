"""The README's generated sections match the code, and its two fresh-machine commands match .ci/run."""

from __future__ import annotations

from pathlib import Path

from devtools.docs import render

ROOT = Path(__file__).resolve().parents[1]


def test_generated_sections_are_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert render(readme) == readme, "README is stale: run `python tests/devtools/docs.py`"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    for step in test_command.split(" && ")[2:]:  # after creating and activating the venv
        assert step in ci, step
