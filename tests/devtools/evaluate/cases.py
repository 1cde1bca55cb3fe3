"""Evaluation cases: one JSON object per line, in the format of the shared eval README (two suites)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repochat.errors import RepochatError

NEEDLE = "needle-docstring"
FILE_LOCALIZATION = "file-localization"
SUITES = (NEEDLE, FILE_LOCALIZATION)
_KINDS_NEED = {"pypi-sdist": ("name", "version"), "npm": ("name", "version"),
               "deb-source-pkg": ("name", "version"), "dir": ("path",)}


class EvalError(RepochatError):
    """A cases file is invalid, or a source could not be prepared."""


@dataclass(frozen=True)
class Case:
    id: str
    suite: str
    source: dict[str, Any]
    query: str
    path: str = ""  # needle: the file holding the function
    start_line: int = 0
    end_line: int = 0
    strip_lines: tuple[int, int] | None = None  # needle: the doc comment, blanked before indexing
    gold_files: tuple[str, ...] = ()  # file-localization: files the change touched
    language: str = ""
    symbol: str = ""  # needle: the function's qualified name (Class.method), when the case gives it
    short_name: str = ""  # needle: its own name (method), when the case gives it
    origin: str = ""  # the cases file's name without extension, to report each file on its own


def load_cases(paths: list[Path]) -> list[Case]:
    """Every case of every file, in order; a bad line is an EvalError naming the file and line."""
    cases: list[Case] = []
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalError(f"cannot read cases file {path}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            if line.strip():
                cases.append(_parse_line(line, path, number))
    if not cases:
        raise EvalError("no cases in " + ", ".join(str(p) for p in paths))
    return cases


def _parse_line(line: str, path: Path, number: int) -> Case:
    where = f"{path}:{number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalError(f"{where}: not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise EvalError(f"{where}: a case must be a JSON object")
    try:
        return _case(data, path, where)
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalError(f"{where}: bad or missing field {exc}") from exc


def _case(data: dict[str, Any], cases_file: Path, where: str) -> Case:
    suite = data["suite"]
    if suite not in SUITES:
        raise EvalError(f"{where}: unknown suite {suite!r} (expected one of {', '.join(SUITES)})")
    source = _source(data["source"], cases_file.parent, where)
    common = dict(id=str(data.get("id") or where), suite=suite, source=source, query=str(data["query"]),
                  language=str(data.get("language", "")), origin=cases_file.stem)
    if suite == FILE_LOCALIZATION:
        gold = data["gold_files"]
        if not isinstance(gold, list) or not gold:
            raise EvalError(f"{where}: gold_files must be a non-empty list")
        return Case(**common, gold_files=tuple(str(g) for g in gold))
    start, end = int(data["start_line"]), int(data["end_line"])
    strip = data.get("strip_lines")
    if start < 1 or end < start:
        raise EvalError(f"{where}: bad line range {start}-{end}")
    return Case(**common, path=str(data["path"]), start_line=start, end_line=end,
                symbol=str(data.get("symbol", "")), short_name=str(data.get("short_name", "")),
                strip_lines=(int(strip[0]), int(strip[1])) if strip else None)


def _source(source: Any, base: Path, where: str) -> dict[str, Any]:
    """The source object, with a local folder's path made absolute (relative to the cases file)."""
    if not isinstance(source, dict) or source.get("kind") not in _KINDS_NEED:
        raise EvalError(f"{where}: source must be an object with kind one of {', '.join(_KINDS_NEED)}")
    missing = [f for f in _KINDS_NEED[source["kind"]] if not source.get(f)]
    if missing:
        raise EvalError(f"{where}: source of kind {source['kind']} needs {', '.join(missing)}")
    if source["kind"] == "dir":
        return {**source, "path": str((base / str(source["path"])).resolve())}
    return dict(source)
