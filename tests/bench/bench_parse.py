"""Time parse_file (chunks + symbols + token counts) over every text file of a directory.

    python tests/bench/bench_parse.py /tmp/django/Django-4.2.16/django [--max-tokens 400] [--profile]

Prints files/s, lines/s, chunks and symbols, overall and per language. Reading files is timed separately: the
indexer reads them anyway, and the figure of interest is the chunker's own cost.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import Counter, defaultdict
from pathlib import Path

from repochat.index.parse import parse_file


def read_texts(root: Path) -> list[tuple[str, str]]:
    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        texts.append((path.relative_to(root).as_posix(), data.decode("utf-8", "replace")))
    return texts


def run(texts: list[tuple[str, str]], max_tokens: int) -> None:
    seconds: dict[str, float] = defaultdict(float)
    files: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    chunks: Counter[str] = Counter()
    symbols: Counter[str] = Counter()
    started = time.perf_counter()
    for path, text in texts:
        t0 = time.perf_counter()
        parsed = parse_file(path, text, max_tokens)
        seconds[parsed.language] += time.perf_counter() - t0
        files[parsed.language] += 1
        lines[parsed.language] += text.count("\n")
        chunks[parsed.language] += len(parsed.chunks)
        symbols[parsed.language] += len(parsed.symbols)
    total = time.perf_counter() - started
    print(f"{'language':12} {'files':>6} {'lines':>8} {'chunks':>7} {'symbols':>8} {'seconds':>8}")
    for language in sorted(files, key=lambda name: -seconds[name]):
        print(f"{language:12} {files[language]:6} {lines[language]:8} {chunks[language]:7} {symbols[language]:8} "
              f"{seconds[language]:8.2f}")
    n_files, n_lines = sum(files.values()), sum(lines.values())
    print(f"total: {n_files} files, {n_lines} lines, {sum(chunks.values())} chunks, {sum(symbols.values())} symbols "
          f"in {total:.2f} s -> {n_files / total:.0f} files/s, {n_lines / total:.0f} lines/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest functions")
    args = parser.parse_args()
    t0 = time.perf_counter()
    texts = read_texts(args.directory)
    print(f"read {len(texts)} text files in {time.perf_counter() - t0:.2f} s")
    parse_file("warmup.py", "def f():\n    pass\n")  # load grammars, compile queries, tiktoken
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, texts, args.max_tokens)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    else:
        run(texts, args.max_tokens)


if __name__ == "__main__":
    main()
