"""CPU path benchmark: prefill and decode speed with llama.cpp's extra CPU buffer types on and off (prints figures;
not collected by pytest).

    python tests/bench/bench_cpu_path.py                       # default model, 2,048-token prefill, 3 rounds
    python tests/bench/bench_cpu_path.py --model coder-1.5b --tokens 4096 --rounds 2

"Extra buffers" are the repacked weight layouts (and, on Intel CPUs with AMX, the AMX tiles, whose path crashes:
repochat keeps them off there unless cpu_extra_buffers = "on"). Each round loads the model both ways, in
alternating order, each in a child process (the probe), so a crash is reported, not fatal. Decode is 32 tokens
after the prefill.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from repochat.config import load_settings
from repochat.engine.cpu import cpu_flags, describe_cpu_path, has_amx

SOURCE = Path(__file__).resolve().parents[2] / "repochat"
DECODE_TOKENS = 32


def measure(model: Path, extra_buffers: bool, tokens: int, threads: int) -> dict[str, float]:
    """In this process: load, prefill ``tokens`` tokens of repochat's own source, then decode greedily."""
    from repochat.engine.llama import ContextParams, LlamaContext, LlamaModel

    started = time.perf_counter()
    llm = LlamaModel(model, extra_buffers=extra_buffers)
    context = LlamaContext(llm, ContextParams(n_ctx=tokens + DECODE_TOKENS + 16, threads=threads))
    loaded = time.perf_counter()
    text = "\n".join(path.read_text() for path in sorted(SOURCE.rglob("*.py")))
    prompt = llm.tokenize(text)[:tokens]
    context.decode(prompt, 0, logits_last=True)
    prefilled = time.perf_counter()
    for position in range(len(prompt), len(prompt) + DECODE_TOKENS):
        context.decode([context.greedy_token()], position, logits_last=True)
    decoded = time.perf_counter()
    return {"load_s": loaded - started, "prefill_tok_s": len(prompt) / (prefilled - loaded),
            "decode_tok_s": DECODE_TOKENS / (decoded - prefilled)}


def run_child(model: Path, extra_buffers: bool, tokens: int, threads: int) -> dict[str, float] | str:
    command = [sys.executable, __file__, "--child", str(model), "--extra", str(int(extra_buffers)),
               "--tokens", str(tokens), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--extra", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, bool(args.extra), args.tokens, args.threads)))
        return
    from repochat.engine.models import resolve_model

    settings = load_settings(Path.cwd(), {"model": args.model})
    model = resolve_model(settings)
    print(f"CPU: {' '.join(sorted(f for f in cpu_flags() if f.startswith(('avx', 'amx', 'fma'))))}")
    print(f"AMX: {'yes' if has_amx() else 'no'}; model {model.name}; prefill {args.tokens} tokens, "
          f"decode {DECODE_TOKENS}, {args.rounds} rounds alternating")
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for round_number in range(args.rounds):
        for extra in ((True, False) if round_number % 2 == 0 else (False, True)):
            outcome = run_child(model, extra, args.tokens, args.threads)
            if isinstance(outcome, str):
                print(f"  {describe_cpu_path(extra)}: {outcome}")
                continue
            results[extra].append(outcome)
    for extra, runs in results.items():
        if runs:
            print(f"{describe_cpu_path(extra):45s} prefill {statistics.median(r['prefill_tok_s'] for r in runs):7.1f} "
                  f"tok/s  decode {statistics.median(r['decode_tok_s'] for r in runs):6.1f} tok/s  "
                  f"load {statistics.median(r['load_s'] for r in runs):5.2f} s  (median of {len(runs)})")


if __name__ == "__main__":
    main()
