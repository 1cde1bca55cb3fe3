"""How well measured prefill rates predict the next prefill (repochat.engine.throughput; prints a table, not collected
by pytest).

    python tests/bench/bench_prefill_estimate.py                        # default model, 1 thread, 512 .. 8K
    python tests/bench/bench_prefill_estimate.py --threads 2 --sizes 1024,4096

It starts from an empty rate store in a temporary cache dir, so the first estimate comes from the first-use probe's
64-token batch alone. Then, for each size in turn: estimate, prefill that many tokens of repochat's own source into
a fresh context with an empty page store (pages of --page tokens, as `ask` does, so every page leaves a sample),
and compare. A second pass repeats the sizes with everything the first pass measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from repochat.config import load_settings
from repochat.engine import probe
from repochat.engine.models import resolve_model
from repochat.engine.pagestore import PageStore
from repochat.engine.session import Engine, split_pages
from repochat.engine.throughput import estimate_prefill_seconds

SOURCE = Path(__file__).resolve().parents[2] / "repochat"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--page", type=int, default=1024)
    parser.add_argument("--sizes", default="512,1024,2048,4096,8192")
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="prefill-bench-") as cache:
        settings = load_settings(Path.cwd(), {"model": args.model})
        model_path = resolve_model(settings)  # from the usual cache dir: the temporary one only holds rates and pages
        settings = replace(settings, cache_dir=cache, threads=args.threads, page_tokens=args.page)
        probe._known.clear()  # an empty cache dir stands for a machine where the model never ran: probe it
        with Engine(model_path, settings) as engine:
            text = "\n".join(path.read_text() for path in sorted(SOURCE.rglob("*.py")))
            tokens = engine.model.tokenize(text)
            print(f"model {model_path.name}, threads {args.threads}, pages of {args.page}")
            print(f"{'pass':>4} {'tokens':>7} {'estimate s':>10} {'measured s':>10} {'est/meas':>8}")
            for number in range(1, args.passes + 1):
                for size in sizes:
                    estimate = estimate_prefill_seconds(settings, model_path, size)
                    engine.close_context()
                    engine.ensure_context(size + 64)
                    store = PageStore(Path(cache) / f"kv-{number}-{size}", engine.identity, settings.kv_cache_size)
                    began = time.monotonic()
                    engine.load_prefix(split_pages(tokens[:size], args.page), store)
                    measured = time.monotonic() - began
                    ratio = f"{estimate / measured:8.2f}" if estimate else "       -"
                    print(f"{number:>4} {size:>7} {estimate or 0:>10.1f} {measured:>10.1f} {ratio}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
