"""KV page store benchmark (prints figures; not collected by pytest).

    python tests/bench/bench_kv.py                       # all three parts
    python tests/bench/bench_kv.py --parts ttft,overhead --tokens 20000
    python tests/bench/bench_kv.py --parts replay --history /path/to/git/repo --commits 50 [--rev REV]

ttft:     cold vs warm time to first token of `ask` (each a fresh engine, as a new `repochat ask` process would be)
          on a git repository of >= --tokens tokens (default: built from an installed package's sources).
overhead: prefill throughput through repochat (pages exported and written to disk) vs plain llama-cpp-python
          `Llama.eval` of the same --overhead-tokens tokens with the same settings, in alternating rounds.
replay:   the last --commits commits of a git repository replayed in order; for each, the share of the
          repository's tokens whose KV would be recomputed (everything from the first page whose key no earlier
          commit had), with files laid out as `ask` lays them out (--max-stale-share; 0: fresh stability order).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp

from repochat.answer.ask import ask
from repochat.answer.prefix import load_repository
from repochat.config import Settings
from repochat.engine.llama import LlamaModel, fitted_threads
from repochat.engine.models import resolve_model
from repochat.engine.pagestore import PageStore, chain_keys
from repochat.engine.planner import UBATCH, context_bucket, needs_flash_attention
from repochat.engine.session import Engine, cache_identity, split_pages
from repochat.repo.history import stability_order
from repochat.answer.prefix_layout import Layout, arrange, stale_share
from repochat.answer.prompt import Prompter, render_file
from repochat.repo.filters import content_skip_reason, decode_text, path_skip_reason
from repochat.tokens import count_tokens, estimate_tokens

QUESTION = "Where is the command line parsed, and which function handles errors?"


def git(root: Path, *args: str, when: int | None = None, binary: bool = False) -> str | bytes:
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@example.com", "PATH": "/usr/bin:/bin", "HOME": str(root)}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    out = subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True).stdout
    return out if binary else out.decode("utf-8", errors="replace")


def build_repository(target: Path, tokens: int, package: str = "click") -> Path:
    """A git repository of an installed package's .py files, one commit per file, filled as close to ``tokens``
    (tiktoken, as rendered for the context) as its files allow without going over: the largest files that still
    fit first, then committed smallest first."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {package!r} is not installed")
    source = Path(list(spec.submodule_search_locations)[0])
    sizes = {path: count_tokens(render_file(str(path.relative_to(source.parent)), path.read_text("utf-8")).text)
             for path in source.rglob("*.py")}
    chosen, total = [], 0
    for path in sorted(sizes, key=lambda p: -sizes[p]):
        if total + sizes[path] <= tokens:
            chosen.append(path)
            total += sizes[path]
    target.mkdir(parents=True)
    git(target, "init", "-q")
    for index, path in enumerate(sorted(chosen, key=lambda p: sizes[p])):
        rel = path.relative_to(source.parent)
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        git(target, "add", str(rel))
        git(target, "commit", "-q", "-m", f"add {rel}", when=1_600_000_000 + index * 3600)
    return target


def bench_ttft(repo: Path, settings: Settings) -> dict[str, float]:
    cold = ask(repo, QUESTION, settings).coverage
    warm = ask(repo, QUESTION, settings).coverage
    print(f"repository: {cold['repo_tokens']:,} tokens in {cold['pages']} pages of {settings.page_tokens}")
    for name, cov in (("cold", cold), ("warm", warm)):
        print(f"  {name}: ttft {cov['ttft_s']:8.2f} s  cache {cov['cache']:7s} restored {cov['restored_tokens']:>7,}"
              f"  prefilled {cov['prefilled_tokens']:>7,}  restore {cov['restore_s']:.2f} s"
              f"  prefill {cov['prefill_s']:.2f} s")
    print(f"  warm speed-up: {cold['ttft_s'] / warm['ttft_s']:.1f}x  (target >= 10x)")
    return {"cold_ttft_s": cold["ttft_s"], "warm_ttft_s": warm["ttft_s"], "prefill_s": cold["prefill_s"],
            "tokens": cold["repo_tokens"]}


def prefix_tokens(repo: Path, settings: Settings, model_path: Path) -> list[int]:
    vocabulary = LlamaModel(model_path, vocab_only=True)
    try:
        return Prompter(vocabulary, model_path).whole(load_repository(repo, settings).files).tokens
    finally:
        vocabulary.close()


def bench_overhead(repo: Path, settings: Settings, model_path: Path, n_tokens: int, rounds: int = 2) -> None:
    """Prefill of the same tokens, alternating: repochat (pages exported and written to a fresh store) and plain
    Llama.eval with the same context size, batch, threads and attention. Alternating rounds share the machine's
    load fairly; the best round of each is compared."""
    tokens = prefix_tokens(repo, settings, model_path)[:n_tokens]
    threads = fitted_threads(settings.threads)
    settings = dataclasses.replace(settings, threads=threads)
    n_ctx = context_bucket(len(tokens) + 64, 10**9)
    engine = Engine(model_path, settings)
    plain = llama_cpp.Llama(str(model_path), n_ctx=n_ctx, n_batch=UBATCH, n_ubatch=UBATCH, n_threads=threads,
                            n_threads_batch=threads, flash_attn=needs_flash_attention(settings.kv_type, 0),
                            verbose=False)
    ours, theirs = [], []
    for round_number in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            engine.close_context()
            engine.ensure_context(n_ctx)
            store = PageStore(Path(cache), engine.identity, settings.kv_cache_size)
            began = time.monotonic()
            engine.load_prefix(split_pages(tokens, settings.page_tokens), store)
            ours.append(time.monotonic() - began)
        plain.reset()
        began = time.monotonic()
        plain.eval(tokens)
        theirs.append(time.monotonic() - began)
        print(f"  round {round_number + 1}: repochat {ours[-1]:.2f} s, plain Llama.eval {theirs[-1]:.2f} s "
              f"({len(tokens):,} tokens, {threads} threads)")
    engine.close()
    print(f"prefill throughput ratio repochat/plain (best rounds): {min(theirs) / min(ours):.3f}  (target >= 0.95)")


def files_at(root: Path, commit: str) -> dict[str, str]:
    """Readable text files of a commit, filtered like the walker does."""
    listing = git(root, "ls-tree", "-r", "-z", "--format=%(objectname) %(path)", commit)
    files = {}
    for entry in filter(None, str(listing).split("\0")):
        blob, path = entry.split(" ", 1)
        if path_skip_reason(path):
            continue
        data = git(root, "cat-file", "blob", blob, binary=True)
        text = None if content_skip_reason(data) else decode_text(data)
        if text is not None:
            files[path] = text
    return files


def bench_replay(history: Path, commits: int, settings: Settings, model_path: Path, rev: str = "HEAD") -> None:
    """Each commit's whole-repository prefix laid out as `ask` lays it out (remembered layout, changed files
    appended, rebuilt past max_stale_share); the pages kept are those whose key an earlier commit's chain already
    had (the page store keeps them all, up to its size bound)."""
    revs = str(git(history, "rev-list", f"--max-count={commits + 1}", "--first-parent", rev)).split()[::-1]
    vocabulary = LlamaModel(model_path, vocab_only=True)
    prompter = Prompter(vocabulary, model_path)
    prompter.content = functools.lru_cache(maxsize=None)(prompter.content)  # each file version tokenized once
    identity = cache_identity(model_path, settings)
    seen: set[str] = set()
    remembered: Layout | None = None
    shares, stale_shares = [], []
    for rev in revs:
        files = files_at(history, rev)
        order = stability_order(history, list(files), rev=rev, include_worktree=False)
        layout = arrange([render_file(path, files[path]) for path in order], remembered, settings.max_stale_share,
                         estimate_tokens)
        remembered = layout
        prompt = prompter.whole(layout.base, layout.appended)
        keys = chain_keys(identity, split_pages(prompt.tokens, settings.page_tokens))
        if seen:
            kept = next((i for i, key in enumerate(keys) if key not in seen), len(keys))
            recomputed = max(len(prompt.tokens) - kept * settings.page_tokens, 0)
            shares.append(recomputed / len(prompt.tokens))
            stale_shares.append(stale_share(layout, lambda text: len(prompter.content(text))))
            print(f"  {rev[:10]}: {len(prompt.tokens):>8,} tokens, recompute {recomputed:>8,} ({shares[-1]:6.1%}), "
                  f"superseded copies {stale_shares[-1]:5.1%}{', rebuilt' if layout.rebuilt else ''}")
        seen.update(keys)
    vocabulary.close()
    if shares:
        ordered = sorted(shares)
        print(f"replay of {len(shares)} commits of {history} up to {revs[-1][:10]} (max_stale_share {settings.max_stale_share}): "
              f"mean share recomputed {sum(shares) / len(shares):.1%}, median {ordered[len(ordered) // 2]:.1%}  "
              f"(goal <= 10%); mean share of superseded copies in the context "
              f"{sum(stale_shares) / len(stale_shares):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="ttft,overhead,replay")
    parser.add_argument("--repo", type=Path, help="repository for ttft/overhead (default: built from click)")
    parser.add_argument("--tokens", type=int, default=16_500, help="repository size (tiktoken; model tokens ~1.3x)")
    parser.add_argument("--page-tokens", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--history", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--rev", default="HEAD", help="replay: the last commit replayed")
    parser.add_argument("--overhead-tokens", type=int, default=8192)
    parser.add_argument("--max-stale-share", type=float, default=Settings.max_stale_share,
                        help="replay: the layout setting (0: a fresh stability order at every commit)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-kv-") as scratch:
        settings = Settings(cache_dir=str(Path(scratch) / "cache"), page_tokens=args.page_tokens,
                            max_answer_tokens=32, threads=args.threads, embeddings=False,
                            max_stale_share=args.max_stale_share)
        model_path = resolve_model(settings)  # assembled before any timing
        repo = args.repo or build_repository(Path(scratch) / "repo", args.tokens)
        if "ttft" in parts:
            bench_ttft(repo, settings)
        if "overhead" in parts:
            bench_overhead(repo, settings, model_path, args.overhead_tokens)
        if "replay" in parts:
            bench_replay(args.history, args.commits, settings, model_path, args.rev)


if __name__ == "__main__":
    main()
