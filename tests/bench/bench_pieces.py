"""Position-independent KV pieces benchmark (issue 12's targets; prints figures; not collected by pytest).

    python tests/bench/bench_pieces.py                                   # replay, retrieval, whole
    python tests/bench/bench_pieces.py --parts replay --history . --commits 50 [--rev REV] [--split-tokens 1024]
        [--unnumbered]
    python tests/bench/bench_pieces.py --parts retrieval [--package click] [--effort low]
    python tests/bench/bench_pieces.py --parts whole --tokens 19000      # the cold prefix-page ask: 15+ min on 2 cores
    python tests/bench/bench_pieces.py --parts quality                   # last: 30 asks of the answer benchmark

replay:    the last --commits commits of a git repository (default: this project) replayed in order; per commit the
           share of the repository's tokens whose KV is recomputed = the tokens of the pieces (files) whose key no
           earlier commit had, plus the links (first piece_link_tokens of a piece) whose boundary (the piece and the
           one before it) no earlier commit had; links also reported apart. Vocabulary only, no decoding. Target:
           mean <= 3% (prefix pages with
           superseded copies: `bench_kv.py --parts replay`). --split-tokens N: what-if of definition-aligned pieces
           (Python files cut before top-level def/class/decorator lines once a piece has N tokens). --unnumbered:
           what-if of files shown without line numbers (a header, then the text), so that lines added above a
           piece no longer change it.
retrieval: a repository larger than the model's context (all .py files of --package), indexed without embeddings;
           each ask on a fresh engine (as a new process). Question A with an empty KV cache, then B (an overlapping
           topic) with A's pieces cached, B again (all its pieces cached), and B with an empty cache, pieces and
           prefix pages. Target: ttft of B with its pieces cached >= 10x lower than B with nothing cached.
whole:     a repository of about --tokens tiktoken tokens (model tokens are ~1.3x), --effort high: (a) today's cold ask
           with prefix pages (kv_pieces false, empty cache); (b) every file's piece computed alone behind the head by
           Engine.load_pieces(head, [piece]) into a throw-away context (never assembled), then an ask on a fresh engine
           that assembles them. Target: ttft (a) / (b) >= 20x.
quality:   tests/bench/eval_answers.py on the needle cases (--quality-cases, --sample 10 --seed 1 --effort low, free
           answers: pick false) with retrieved excerpts as pieces (kv_pieces_retrieval), the same with
           piece_link_tokens 0, and prefix pages; each configuration with its own empty KV cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LANCE_LOG", "error")  # LanceDB deprecation warnings would bury the figures

from bench_kv import QUESTION, build_repository, files_at, git  # noqa: E402  (the script's own folder)

from repochat.answer.ask import ask  # noqa: E402
from repochat.config import Settings  # noqa: E402
from repochat.engine.llama import LlamaModel  # noqa: E402
from repochat.engine.gguf import read_gguf  # noqa: E402
from repochat.engine.models import resolve_model  # noqa: E402
from repochat.engine.pieces import LINK_INDEX, Placement  # noqa: E402
from repochat.engine.planner import context_bucket  # noqa: E402
from repochat.engine.session import Engine, cache_identity  # noqa: E402
from repochat.repo.history import stability_order  # noqa: E402
from repochat.index.indexer import update_index  # noqa: E402
from repochat.answer.prompt import Prompter, render_file  # noqa: E402
from repochat.answer.prefix import load_repository, plan_and_prefix  # noqa: E402

# Two questions about click's handling of a missing required parameter: both retrieve core.py's Parameter
# processing and exceptions.py's MissingParameter, each also some excerpts of its own.
QUESTION_A = "What does click do when a required parameter is missing from the command line?"
QUESTION_B = "How is the error message for a missing required parameter put together?"
NEEDLES = Path("/work/shared/eval/dev-needles.jsonl")


def _row(name: str, cov: dict) -> str:
    return (f"  {name:38s} ttft {cov['ttft_s']:7.2f} s  {cov['kv_unit']}s {cov['pages']:>3} "
            f"restored {cov['pages_restored']:>3} ({cov['restored_tokens']:>6,} tok)  "
            f"prefilled {cov['prefilled_tokens']:>6,} tok {cov['prefill_s']:6.2f} s  "
            f"link {cov['link_tokens']:>5,} tok {cov['link_s']:5.2f} s ({cov['links_restored']} restored)  "
            f"restore {cov['restore_s']:5.2f} s")


# --- replay -------------------------------------------------------------------------------------------------------

# A top-level Python definition (a decorator first) in a rendered file, where the what-if split may cut it.
_DEFINITION = re.compile(r"(?:\d+\|)?(?:async def |def |class |@)")


def split_rendered(text: str, piece_tokens: int) -> list[str]:
    """What-if for the replay (the engine has one piece per file): a rendered file cut before top-level
    definitions into pieces of at least ``piece_tokens`` (estimated as characters / 3.5). 0: the file whole."""
    if piece_tokens <= 0:
        return [text]
    pieces, current, size = [], [], 0.0
    for line in text.splitlines(keepends=True):
        if current and size >= piece_tokens and _DEFINITION.match(line):
            pieces.append("".join(current))
            current, size = [], 0.0
        current.append(line)
        size += len(line) / 3.5
    return [*pieces, "".join(current)]


def bench_replay(history: Path, commits: int, rev: str, settings: Settings, model_path: Path,
                 split_tokens: int = 0, unnumbered: bool = False) -> None:
    """Each commit's whole-repository pieces (one per file, as `ask` assembles them; with ``split_tokens``, the
    what-if of definition-aligned pieces); a piece is recomputed when its key (identity, head, own tokens) is new:
    the page store keeps every earlier one, up to its size bound."""
    head = str(git(history, "rev-parse", rev)).strip()
    revs = str(git(history, "rev-list", f"--max-count={commits + 1}", "--first-parent", head)).split()[::-1]
    vocabulary = LlamaModel(model_path, vocab_only=True)
    prompter = Prompter(vocabulary, model_path)
    content = functools.lru_cache(maxsize=None)(prompter.content)  # each file version tokenized once
    identity = cache_identity(model_path, settings)
    link = settings.piece_link_tokens
    seen: set[str] = set()
    shares, link_shares, single = [], [], []  # single: commits that recompute one piece (a one-file edit)
    for commit in revs:
        files = files_at(history, commit)
        order = stability_order(history, list(files), rev=commit, include_worktree=False)
        shown = {path: f"=== {path} ===\n{files[path]}\n" if unnumbered else render_file(path, files[path]).text
                 for path in order}
        pieces = [content(text) for path in order for text in split_rendered(shown[path], split_tokens)]
        placement = Placement.of(identity, prompter.head, pieces)
        link_keys = {placement.link_key(unit, link): unit for unit in placement.link_units(0, link)}
        total = len(prompter.head) + sum(map(len, pieces))
        if seen:
            new = [len(unit) for unit, key in zip([prompter.head, *pieces], placement.keys) if key not in seen]
            links = sum(placement.link_length(unit, link) for key, unit in link_keys.items() if key not in seen)
            shares.append((sum(new) + links) / total)
            link_shares.append(links / total)
            if len(new) == 1:
                single.append(shares[-1])
            print(f"  {commit[:10]}: {total:>8,} tokens in {len(pieces):>4} pieces, "
                  f"recompute {len(new):>2} pieces {sum(new):>7,} tokens + links {links:>5,} ({shares[-1]:6.2%}; "
                  f"links {link_shares[-1]:5.2%})")
        seen.update(placement.keys, link_keys)
    vocabulary.close()
    if shares:
        ordered = sorted(shares)
        split = f"files split before definitions every >= {split_tokens} tokens" if split_tokens else "one per file"
        split += ", lines unnumbered" if unnumbered else ""
        print(f"replay of {len(shares)} commits of {history} up to {head[:10]} (pieces {split}, piece_link_tokens "
              f"{settings.piece_link_tokens}): mean share recomputed {sum(shares) / len(shares):.2%}, "
              f"median {ordered[len(ordered) // 2]:.2%}, max {ordered[-1]:.2%}  (target mean <= 3%); "
              f"{len(single)} commits recompute one piece: mean {sum(single) / max(len(single), 1):.2%}; "
              f"of which links: mean {sum(link_shares) / len(link_shares):.2%} of the repository")


# --- retrieval ----------------------------------------------------------------------------------------------------

def bench_retrieval(repo: Path, settings: Settings, model_path: Path, effort: str) -> None:
    """Each ask on a fresh engine (as `repochat ask` in a new process); caches are separate directories."""
    began = time.monotonic()
    update_index(repo, settings)
    print(f"index of {repo} built in {time.monotonic() - began:.1f} s (embeddings {settings.embeddings})")
    context_length = int(read_gguf(model_path).arch_value("context_length", 0))

    def cached(name: str, **changes: object) -> Settings:
        return dataclasses.replace(settings, cache_dir=str(Path(settings.cache_dir) / name), **changes)

    shared, unlinked = cached("shared"), cached("unlinked")
    runs = [("A, empty cache", QUESTION_A, shared), ("B, after A", QUESTION_B, shared),
            ("B again (its pieces and links cached)", QUESTION_B, shared),
            ("B, its pieces cached, no links", QUESTION_B, unlinked), ("B, empty cache", QUESTION_B, cached("empty")),
            ("B, empty cache, prefix pages", QUESTION_B, cached("pages", kv_pieces=False))]
    results = {}
    for name, question, run_settings in runs:
        if run_settings is unlinked:  # B's pieces as a warm-up leaves them: computed, never assembled
            links = f"{LINK_INDEX:07d}-"
            shutil.copytree(Path(shared.cache_dir), Path(unlinked.cache_dir),
                            ignore=lambda _dir, names: [name for name in names if name.startswith(links)])
        results[name] = ask(repo, question, run_settings, effort=effort).coverage
        cov = results[name]
        if len(results) == 1:
            print(f"repository {cov['repo_tokens']:,} tokens (model context {context_length:,}); mode {cov['mode']}, "
                  f"effort {effort}, {cov['files_retrieved']} files retrieved")
        print(_row(name, cov))
    cold, after_a, again, alone = (results[k]["ttft_s"] for k in (
        "B, empty cache", "B, after A", "B again (its pieces and links cached)", "B, its pieces cached, no links"))
    pages = results["B, empty cache, prefix pages"]["ttft_s"]
    print(f"  B speed-up over an empty cache: with A's pieces and links cached {cold / after_a:.1f}x; with all of "
          f"B's pieces cached, links not {cold / alone:.1f}x, links too {cold / again:.1f}x (target >= 10x); "
          f"against prefix pages, empty cache: {pages / after_a:.1f}x, {pages / alone:.1f}x, {pages / again:.1f}x")


# --- whole --------------------------------------------------------------------------------------------------------

def warm_pieces(repo: Path, settings: Settings, model_path: Path) -> tuple[int, int, float]:
    """Every file's piece computed alone behind the head and saved, never assembled: one load_pieces(head, [piece])
    per file in a throw-away context (the head stays in memory, the piece before it is dropped). Returns pieces,
    tokens, seconds."""
    began = time.monotonic()
    with Engine(model_path, settings) as engine:
        prompter = Prompter(engine.model, model_path)
        _plan, prompt = plan_and_prefix(load_repository(repo, settings), prompter, model_path, settings, "high")
        assert prompt is not None, "the repository does not fit the context: use a smaller --tokens"
        store = engine.store(settings, pieces=True)
        engine.ensure_context(context_bucket(len(prompt.head) + max(map(len, prompt.pieces)) + 64, 10**9))
        tokens = 0
        for piece in prompt.pieces:
            tokens += engine.load_pieces(prompt.head, [piece], store).prefilled_tokens
    return len(prompt.pieces), tokens, time.monotonic() - began


def bench_whole(repo: Path, settings: Settings, model_path: Path) -> None:
    pages = dataclasses.replace(settings, cache_dir=str(Path(settings.cache_dir) / "pages"), kv_pieces=False)
    pieces = dataclasses.replace(settings, cache_dir=str(Path(settings.cache_dir) / "pieces"), kv_pieces=True)
    cold = ask(repo, QUESTION, pages, effort="high").coverage
    print(f"repository {cold['repo_tokens']:,} tokens, {cold['files_in_context']} files, effort high")
    print(_row("(a) cold, prefix pages", cold))
    count, tokens, seconds = warm_pieces(repo, pieces, model_path)
    print(f"  (b) warmed {count} pieces ({tokens:,} tokens) alone, never assembled, in {seconds:.1f} s")
    warm = ask(repo, QUESTION, pieces, effort="high").coverage
    print(_row("(b) pieces cached, first assembly", warm))
    print(f"  speed-up (a)/(b): {cold['ttft_s'] / warm['ttft_s']:.1f}x  (target >= 20x)")


# --- quality ------------------------------------------------------------------------------------------------------

def bench_quality(cases: Path, sample: int, seed: int, scratch: Path) -> None:
    """eval_answers.py per configuration, each with an empty KV cache of its own (--set cache_dir)."""
    script = Path(__file__).with_name("eval_answers.py")
    configurations = [("pieces, link 32", ["kv_pieces_retrieval=true", "piece_link_tokens=32"]),
                      ("pieces, link 0", ["kv_pieces_retrieval=true", "piece_link_tokens=0"]),
                      ("prefix pages", ["kv_pieces=false"])]
    for index, (name, values) in enumerate(configurations):
        command = [sys.executable, str(script), str(cases), "--sample", str(sample), "--seed", str(seed),
                   "--effort", "low", "--set", "pick=false", "--set", f"cache_dir={scratch / f'quality-{index}'}"]
        for value in values:
            command += ["--set", value]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="replay,retrieval,whole", help="replay,retrieval,whole,quality")
    parser.add_argument("--package", default="click", help="installed package whose .py files make the repositories")
    parser.add_argument("--tokens", type=int, default=19_000, help="whole: repository size (tiktoken)")
    parser.add_argument("--effort", default="low", choices=("low", "auto"), help="retrieval: effort of the asks")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--link-tokens", type=int, default=Settings.piece_link_tokens,
                        help="the piece_link_tokens setting (0: no boundary fix)")
    parser.add_argument("--history", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--rev", default="HEAD", help="replay: the last commit replayed")
    parser.add_argument("--split-tokens", type=int, default=0,
                        help="replay what-if: files cut before top-level definitions into pieces of >= N tokens")
    parser.add_argument("--unnumbered", action="store_true",
                        help="replay what-if: files shown without line numbers (a header, then the text)")
    parser.add_argument("--quality-cases", type=Path, default=NEEDLES)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-pieces-") as folder:
        scratch = Path(folder)
        settings = Settings(cache_dir=str(scratch / "cache"), max_answer_tokens=32, threads=args.threads,
                            embeddings=False, piece_link_tokens=args.link_tokens)
        model_path = resolve_model(settings)  # assembled before any timing
        if "replay" in parts:
            bench_replay(args.history, args.commits, args.rev, settings, model_path, args.split_tokens,
                         args.unnumbered)
        if "retrieval" in parts:
            repo = build_repository(scratch / "retrieval-repo", 10**9, args.package)  # all of the package
            retrieval = dataclasses.replace(settings, index_dir=str(scratch / "index"), kv_pieces_retrieval=True,
                                            cache_dir=str(scratch / "cache-retrieval"))
            bench_retrieval(repo, retrieval, model_path, args.effort)
        if "whole" in parts:
            repo = build_repository(scratch / "whole-repo", args.tokens, args.package)
            bench_whole(repo, dataclasses.replace(settings, cache_dir=str(scratch / "cache-whole")), model_path)
        if "quality" in parts:
            bench_quality(args.quality_cases, args.sample, args.seed, scratch)


if __name__ == "__main__":
    main()
