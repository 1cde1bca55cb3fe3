"""A repository of bad inputs (issue 10): every kind of file, name and link a user's tree can hold, for the
robustness test and for trying by hand (`python tests/robustness_corpus.py /tmp/corpus [--git]`).

Files outside the root hold OUTSIDE_MARKER: it must never show up in any output of repochat run on the corpus.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

OUTSIDE_MARKER = "zqxoutsidemarker7731"
# What the walker must count for the corpus, by skip reason (at least these paths).
EXPECTED_SKIPS = {
    "bad_name": ["names/latin1_caf\\xe9.py"],
    "invalid_ignore_line": [".repochatignore:2", ".repochatignore:3"],
    "ignored": ["skip.ignored"],
    "symlink_outside": ["links/outside_dir", "links/outside_file.py"],
    "symlink_loop": ["links/loop_a", "links/loop_b", "links/self_loop"],
    "deleted": ["links/dangling.py"],
    "not_a_file": ["links/to_root"],
    "too_large": ["big/fifty_mb.txt", "big/minified_5mb.js"],
}
# Found in the plain walk only: git lists no FIFO, and reads the nested .gitignore itself.
EXPECTED_PLAIN_SKIPS = {"not_a_file": ["links/fifo"], "invalid_ignore_line": ["nested_ignore/.gitignore:1"]}
# Decided by the indexer when it reads a file: path -> its status in the files table.
CONTENT_SKIPS = {"content/nul_bytes.py": "binary", "content/utf16.py": "binary", "content/random.bin": "binary",
                 "content/image.png": "binary", "content/latin1.txt": "not_utf8",
                 "big/single_line_300kb.py": "minified"}
TINY_FILES = 20_000
DEPTH = 40

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def make_outside(folder: Path) -> Path:
    """Files outside the repository that links inside it point to; each holds the marker."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outside_file.py").write_text(f"def leaked():\n    return '{OUTSIDE_MARKER}'\n")
    (folder / "outside_dir").mkdir(exist_ok=True)
    (folder / "outside_dir" / "inner.py").write_text(f"SECRET = '{OUTSIDE_MARKER}'\n")
    return folder


def make_corpus(root: Path, outside: Path, use_git: bool, tiny_files: bool = True) -> Path:
    """tiny_files=False leaves out the 20,000 tiny files and the 40 levels of folders: a corpus small enough to go
    into a model's context whole."""
    root.mkdir(parents=True)
    _contents(root / "content")
    _big(root / "big")
    _names(root / "names")
    _links(root / "links", outside, root)
    if tiny_files:
        _deep(root / "deep")
        _many(root / "many")
    _broken(root / "broken")
    _ignores(root)
    _nested_git(root / "nested_repo")
    (root / "README.md").write_text("# corpus\n\nA repository of bad inputs.\n")
    if use_git:
        _git(root, "init", "-q", "-b", "main")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "corpus")
    return root


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _contents(folder: Path) -> None:
    _write(folder / "random.bin", random.Random(7).randbytes(64 * 1024))
    _write(folder / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    _write(folder / "latin1.txt", "caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade\n".encode("latin-1") * 40)
    _write(folder / "nul_bytes.py", b"def f():\n    return 1\n\x00\x00\x00def g():\n    pass\n")
    _write(folder / "utf16.py", "def utf16_function():\n    return 'hello'\n".encode("utf-16"))
    _write(folder / "crlf.py", "def crlf_marker_function():\r\n    return 1\r\n\r\nclass Crlf:\r\n    pass\r\n")
    _write(folder / "bom.py", "\ufeffdef bom_function():\n    return 2\n")
    _write(folder / "mixed_bad_byte.py", b"# caf\xc3\xa9 \xff bad byte\n" + b"x = 1\n" * 300)
    _write(folder / "control_chars.md", "bell \x07 escape \x1b[31m red \x1b[0m form \x0c feed\n")
    _write(folder / "empty.py", "")
    _write(folder / "surrogate_text.py", "s = '\\ud800'  # an escaped lone surrogate\n")


def _big(folder: Path) -> None:
    folder.mkdir(parents=True)
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ the quick brown fox\n"
    with open(folder / "fifty_mb.txt", "wb") as handle:
        handle.write(line * (50 * 1024 * 1024 // len(line) + 1))
    _write(folder / "minified_5mb.js", "var a=1;function f(b){return b+a}" * (5 * 1024 * 1024 // 34))
    _write(folder / "single_line_300kb.py", "DATA = '" + "x" * (300 * 1024) + "'\n")


def _names(folder: Path) -> None:
    folder.mkdir(parents=True)
    names = ["with space.py", "caf\u00e9_\u00fcber.py", "\u65e5\u672c\u8a9e.py", "new\nline.py", "tab\there.py",
             "quote's.py", 'double"quote.py', "back\\slash.py", "-dash-first.py", "percent%s.py", "[brackets].py",
             "star*glob?.py", "semi;colon.py", "emoji_\U0001f600.py", " leading_space.py", "trailing_space.py "]
    for number, name in enumerate(names):
        _write(folder / name, f"def name_function_{number}():\n    return {number}\n")
    _write(folder / os.fsdecode(b"latin1_caf\xe9.py"), "def latin_name():\n    return 1\n")


def _links(folder: Path, outside: Path, root: Path) -> None:
    folder.mkdir(parents=True)
    os.symlink(outside / "outside_file.py", folder / "outside_file.py")
    os.symlink(outside / "outside_dir", folder / "outside_dir")
    os.symlink("../" * 8 + "etc/passwd", folder / "relative_escape")  # may or may not exist: never read
    os.symlink(folder / "self_loop", folder / "self_loop")
    os.symlink(folder / "loop_b", folder / "loop_a")
    os.symlink(folder / "loop_a", folder / "loop_b")
    os.symlink(root, folder / "to_root")  # a folder loop back to the root
    os.symlink(folder / "nowhere.py", folder / "dangling.py")
    _write(folder / "real.py", "def linked_target():\n    return 3\n")
    os.symlink("real.py", folder / "inside_link.py")  # a link inside the root is fine
    os.mkfifo(folder / "fifo")


def _deep(folder: Path) -> None:
    path = folder.joinpath(*[f"level{n:02d}" for n in range(DEPTH)])
    _write(path / "bottom.py", "def deepest():\n    return 'deepest_marker_value'\n")


def _many(folder: Path) -> None:
    for number in range(TINY_FILES):
        directory = folder / f"d{number // 500:03d}"
        if number % 500 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{number:05d}.txt").write_text(f"tiny file {number} tiny_marker_{number}\n")


def _broken(folder: Path) -> None:
    _write(folder / "broken.py", "def broken(:\n    return [1, 2\nclass\n  x = )\n")
    _write(folder / "broken.js", "function broken( {\n  return {a: [1, 2;\n}}}\n")
    _write(folder / "broken.go", "package main\n\nfunc broken( {\n\treturn 1 +\n")
    _write(folder / "unclosed_string.py", 'x = """never closed\n' + "y = 1\n" * 50)
    _write(folder / "deep_nesting.py", "x = " + "[" * 3000 + "]" * 3000 + "\n")
    _write(folder / "huge_function.py", "def huge():\n" + "    a = 1\n" * 20000)


def _ignores(root: Path) -> None:
    _write(root / ".repochatignore", "*.ignored\n!\nfoo\\\n")
    _write(root / "skip.ignored", "ignored by .repochatignore\n")
    _write(root / "nested_ignore" / ".gitignore", "!\n*.tmp\n")
    _write(root / "nested_ignore" / "kept.py", "def kept():\n    return 1\n")
    _write(root / "nested_ignore" / "dropped.tmp", "dropped\n")


def _nested_git(folder: Path) -> None:
    _write(folder / "inner.py", "def inner_repository_function():\n    return 4\n")
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "inner")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**GIT_ENV, "HOME": str(root)})


if __name__ == "__main__":
    target = Path(sys.argv[1])
    make_corpus(target, make_outside(target.parent / f"{target.name}_outside"), use_git="--git" in sys.argv)
    print(target)
