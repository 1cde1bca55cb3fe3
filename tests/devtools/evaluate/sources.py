"""Fetch and unpack the code a cases file points at (PyPI sdist, npm package, Debian package, or a local folder).

Preparation is the only step that uses the network. Each source is unpacked once into the work folder and marked
complete, so later runs (and interrupted ones) reuse or redo it cleanly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

from .cases import EvalError

COMPLETE = ".complete"
SOURCE_KINDS = ("pypi-sdist", "npm", "deb-source-pkg", "dir")


def source_key(source: Mapping[str, Any]) -> str:
    """A stable identity for a source, used to group cases and name cache folders."""
    return json.dumps(dict(source), sort_keys=True)


def source_label(source: Mapping[str, Any]) -> str:
    """A short human name: the package name, or the folder name of a local source."""
    return str(source.get("name") or Path(str(source.get("path", "?"))).name)


def cache_name(source: Mapping[str, Any]) -> str:
    """<name>-<version> for registry sources; <folder>-<hash of the path> for local ones."""
    if source["kind"] == "dir":
        digest = hashlib.sha256(str(source["path"]).encode()).hexdigest()[:8]
        return f"dir-{Path(str(source['path'])).name}-{digest}"
    return f"{source['name']}-{source['version']}"


def prepare_source(source: Mapping[str, Any], work: Path, fresh: bool = False) -> Path:
    """The folder that case paths are relative to, downloading and unpacking the source when needed."""
    if source["kind"] == "dir":
        root = Path(str(source["path"]))
        if not root.is_dir():
            raise EvalError(f"source folder {root} does not exist")
        return root
    folder = work / cache_name(source) / "source"
    if fresh or not (folder / COMPLETE).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        unpacked = _FETCHERS[str(source["kind"])](source, folder)
        (folder / COMPLETE).write_text(str(unpacked.relative_to(folder)), encoding="utf-8")
    return folder / (folder / COMPLETE).read_text(encoding="utf-8")


def _fetch_pypi(source: Mapping[str, Any], folder: Path) -> Path:
    download = folder / "download"
    _run(["pip", "download", "--no-deps", "--no-binary", ":all:",
          f"{source['name']}=={source['version']}", "-d", str(download)], what=f"pip download {source['name']}")
    archive = _only_file(download, source)
    return _single_top(unpack_archive(archive, folder / "tree"))


def _fetch_npm(source: Mapping[str, Any], folder: Path) -> Path:
    download = folder / "download"
    download.mkdir()
    _run(["npm", "pack", "--silent", f"{source['name']}@{source['version']}"], cwd=download,
         what=f"npm pack {source['name']}")
    tree = unpack_archive(_only_file(download, source), folder / "tree")
    return _inside(tree / "package", source.get("root"))


def _fetch_deb(source: Mapping[str, Any], folder: Path) -> Path:
    download = folder / "download"
    download.mkdir()
    command = ["apt-get", "download", f"{source['name']}={source['version']}"]
    try:
        _run(command, cwd=download, what=f"apt-get download {source['name']}")
    except EvalError:
        _run(["apt-get", "update"], what="apt-get update")
        _run(command, cwd=download, what=f"apt-get download {source['name']}")
    tree = folder / "tree"
    _run(["dpkg-deb", "-x", str(_only_file(download, source)), str(tree)], what="dpkg-deb -x")
    if source.get("archive"):
        inner = tree / str(source["archive"])
        if not inner.is_file():
            raise EvalError(f"{source['name']}: no archive {source['archive']} inside the package")
        tree = unpack_archive(inner, folder / "archive")
    return _inside(tree, source.get("root"))


_FETCHERS = {"pypi-sdist": _fetch_pypi, "npm": _fetch_npm, "deb-source-pkg": _fetch_deb}


def unpack_archive(archive: Path, target: Path) -> Path:
    """Unpack a .tar.* or .zip archive into target (refusing paths that leave it)."""
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise EvalError(f"{archive.name}: unsafe member path {name}")
            zipped.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tarred:
            tarred.extractall(target, filter="data")
    else:
        raise EvalError(f"{archive.name}: not a tar or zip archive")
    return target


def _single_top(tree: Path) -> Path:
    """An sdist unpacks to one NAME-VERSION folder; case paths are relative to it."""
    entries = list(tree.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else tree


def _inside(tree: Path, root: Any) -> Path:
    folder = tree / str(root) if root else tree
    if not folder.is_dir():
        raise EvalError(f"no folder {root!r} in the unpacked package ({tree})")
    return folder


def _only_file(download: Path, source: Mapping[str, Any]) -> Path:
    files = [p for p in download.iterdir() if p.is_file()]
    if len(files) != 1:
        raise EvalError(f"{source['name']}: expected one downloaded file, found {len(files)}")
    return files[0]


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EvalError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EvalError(f"{what} failed: {last[0]}")
