"""A remote engine's warm ask against its cold one, through a real OpenAI-compatible server (prints figures; not
collected by pytest).

    python tests/bench/bench_remote.py [--tokens 14100] [--ctx 32768] [--threads 2]

Starts llama-cpp-python's server (`python -m llama_cpp.server`) with the default model on 127.0.0.1, builds a git
repository of an installed package's sources (bench_kv.build_repository: --tokens tiktoken tokens, ~1.3x as many
model tokens), and asks two different questions about it with --effort high through `--engine`: the first prefills
the whole repository on the server (cold), the second finds the repository prefix in the server's cache and
prefills only its question (warm). Prints both times to first token and the ratio (target >= 5x), and what the
server's log says it reused (its API does not carry the count). A cold 16K-token prefill takes ~15 minutes on
2 cores.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_kv import build_repository  # noqa: E402  (the script's own folder)

from repochat.answer.ask import ask  # noqa: E402
from repochat.config import Settings  # noqa: E402
from repochat.engine.models import resolve_model  # noqa: E402

QUESTIONS = ("Where is the command line parsed, and which function handles errors?",
             "Which class formats the help text?")
_PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+)")


def start_server(model: Path, ctx: int, threads: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_ctx",
                                    str(ctx), "--n_threads", str(threads), "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(360):
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    sys.exit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=14100,
                        help="tiktoken tokens of the repository (14100: 16,665 model tokens of click)")
    parser.add_argument("--ctx", type=int, default=32768, help="the server's context")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as scratch:
        work = Path(scratch)
        repo = build_repository(work / "repo", args.tokens)
        log = work / "server.log"
        model = resolve_model(Settings())
        process, url = start_server(model, args.ctx, args.threads, log)
        try:
            settings = Settings(cache_dir=str(work / "cache"), engine=url, engine_context=args.ctx,
                                max_answer_tokens=32, embeddings=False)
            runs = [ask(repo, question, settings, effort="high").coverage for question in QUESTIONS]
        finally:
            process.terminate()
            process.wait(timeout=60)
        hits = _PREFIX_HIT.findall(log.read_text(errors="replace"))
    cold, warm = runs
    print(f"server: llama-cpp-python, default model, n_ctx {args.ctx}, {args.threads} threads")
    print(f"repository: {cold['repo_tokens']:,} model tokens ({cold['files_in_context']} files), mode {cold['mode']}")
    for name, cov in (("cold", cold), ("warm", warm)):
        print(f"  {name}: ttft {cov['ttft_s']:8.2f} s  prompt {cov['prompt_tokens']:>7,} tokens  "
              f"total {cov['total_s']:8.2f} s")
    print(f"  server log, last prefix reuse: {hits[-1][0] if hits else 0} tokens reused, "
          f"{hits[-1][1] if hits else '?'} prefilled")
    print(f"  warm speed-up: {cold['ttft_s'] / warm['ttft_s']:.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
