"""The first use of a model on this machine runs in a child process, so that a native crash in llama.cpp becomes a
message instead of the end of ours.

The child loads the model with the chosen CPU path, decodes a batch and two single tokens (the two matmul paths a
question takes) and exits. Its outcome is remembered per llama.cpp build, CPU, model, GPU layers and CPU path in
``<cache_dir>/engine-probes.json`` (and in this process), so the check costs one model load once; a crash is
remembered too and not tried again. When the preferred path crashes and the setting is "auto", plain weights are
tried and used if they work. The child also reports how long its batch took, the first prefill rate measured for
this model here (engine/throughput.py), so that the very first ask can already estimate its prefill.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_atomic
from ..callbacks import Progress
from ..config import Settings
from ..errors import EngineCrash
from .cpu import cpu_flags, describe_cpu_path, use_extra_buffers
from .throughput import RateKey, Sample, record

PROBE_FILE = "engine-probes.json"
PROBE_TIMEOUT_S = 600  # loading a large model from a slow disk can take minutes
OK = "ok"
FAILED = "failed"
_known: set[str] = set()  # probe keys that ran in this process's lifetime
_TIMING_PREFIX = "prefill "  # the child's stdout line: "prefill <threads> <tokens> <seconds>"


@dataclass(frozen=True)
class ProbeRun:
    outcome: str  # "ok", or how it failed
    threads: int = 0  # the threads the child's batch ran on
    prefill: Sample | None = None  # the child's batch decode, when it ran


def checked_extra_buffers(model_path: Path, settings: Settings, progress: Progress | None = None) -> bool:
    """The extra-buffers choice to load ``model_path`` with, once a child process has run it so on this machine.
    With "auto", a preferred path that crashed gives way to plain weights; EngineCrash (one line) when none runs."""
    preferred = use_extra_buffers(settings.cpu_extra_buffers)
    choices = [preferred] + ([False] if preferred and settings.cpu_extra_buffers == "auto" else [])
    records = _load_records(settings)
    for extra in choices:
        key = probe_key(model_path, settings.gpu_layers, extra)
        if key in _known:
            return extra
        recorded = records.get(key)
        if recorded is None:
            run = _probe(model_path, extra, settings.gpu_layers, progress)
            outcome = run.outcome
            seed_rate(settings, model_path, extra, run)
        else:
            outcome = recorded
        if outcome.startswith(FAILED):  # a Python-level error: loading it in this process reports it properly
            return extra
        if key not in records:
            records[key] = outcome
            _save_records(settings, records)
        if outcome == OK:
            _known.add(key)
            return extra
    raise EngineCrash(_crash_message(model_path, outcome, choices[-1]))


def probe_key(model_path: Path, gpu_layers: int, extra_buffers: bool) -> str:
    """What decides whether llama.cpp runs: its build, the CPU, the model file, how it is offloaded and laid out."""
    import llama_cpp

    library = Path(llama_cpp.__file__).parent / "lib"
    builds = sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in library.glob("*.so*"))
    model = Path(model_path).resolve()
    stat = model.stat()
    parts = [llama_cpp.__version__, *builds, " ".join(sorted(cpu_flags())), str(model), str(stat.st_size),
             str(stat.st_mtime_ns), f"gpu={gpu_layers}", f"extra_buffers={int(extra_buffers)}"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def run_probe(model_path: Path, extra_buffers: bool, gpu_layers: int) -> ProbeRun:
    """Run the check in a child process: "ok" (with the batch's timing), or how it failed (a signal name, an exit
    status, a timeout)."""
    command = [sys.executable, "-m", "repochat.engine.probe", str(model_path),
               "--extra-buffers", "1" if extra_buffers else "0", "--gpu-layers", str(gpu_layers)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ProbeRun(f"no answer within {PROBE_TIMEOUT_S} s")
    except OSError as exc:
        return ProbeRun(f"could not start the check: {exc.strerror}")
    if done.returncode == 0:
        return _with_timing(done.stdout.decode("utf-8", "replace"))
    if done.returncode < 0:
        return ProbeRun(f"crashed with {signal_name(-done.returncode)}")
    last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
    return ProbeRun(f"{FAILED}: {last[0][:300]}")


def _with_timing(stdout: str) -> ProbeRun:
    """A successful run, with the timing line the child printed (none if it is missing or garbled)."""
    for line in stdout.splitlines():
        if line.startswith(_TIMING_PREFIX):
            try:
                threads, tokens, seconds = line[len(_TIMING_PREFIX):].split()
                return ProbeRun(OK, int(threads), Sample(int(tokens), 0, float(seconds)))
            except ValueError:
                break
    return ProbeRun(OK)


def seed_rate(settings: Settings, model_path: Path, extra_buffers: bool, run: ProbeRun) -> None:
    """File the child's batch timing under the setup it ran with: its own context is f16 without flash attention."""
    if run.prefill is None:
        return
    try:
        size = Path(model_path).stat().st_size
    except OSError:
        return
    key = RateKey(model=Path(model_path).name, size=size, threads=run.threads, gpu_layers=settings.gpu_layers,
                  extra_buffers=extra_buffers, kv_type="f16", flash_attn=False)
    record(settings, key, [run.prefill])


def _probe(model_path: Path, extra_buffers: bool, gpu_layers: int, progress: Progress | None) -> ProbeRun:
    if progress:
        progress("probe", 0, 1)
    run = run_probe(model_path, extra_buffers, gpu_layers)
    if progress:
        progress("probe", 1, 1)
    return run


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _crash_message(model_path: Path, outcome: str, extra_buffers: bool) -> str:
    hint = ("set cpu_extra_buffers = \"off\" (REPOCHAT_CPU_EXTRA_BUFFERS=off)" if extra_buffers
            else "try another model (--model) or another llama-cpp-python build")
    return (f"llama.cpp {outcome} running {Path(model_path).name} on this CPU "
            f"({describe_cpu_path(extra_buffers)}); {hint}")


def _records_path(settings: Settings) -> Path:
    return Path(settings.cache_dir).expanduser() / PROBE_FILE


def _load_records(settings: Settings) -> dict[str, str]:
    try:
        data = json.loads(_records_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()) else {}


def _save_records(settings: Settings, records: dict[str, str]) -> None:
    """Best effort: a cache dir that cannot be written only means the check runs again next time."""
    path = _records_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(records, indent=1).encode("utf-8"), prefix=PROBE_FILE)
    except OSError:
        pass


def _check(model_path: Path, extra_buffers: bool, gpu_layers: int) -> None:
    """In the child: load, decode a batch of 64 tokens (timed, for the prefill estimates), then two single tokens."""
    from .llama import ContextParams, LlamaContext, LlamaModel

    model = LlamaModel(model_path, gpu_layers=gpu_layers, extra_buffers=extra_buffers)
    context = LlamaContext(model, ContextParams(n_ctx=256, n_batch=64, threads=0))
    tokens = model.tokenize("def add(a, b):\n    return a + b\n" * 8)[:64]
    began = time.monotonic()
    context.decode(tokens, 0, logits_last=True)
    print(f"{_TIMING_PREFIX}{context.threads} {len(tokens)} {time.monotonic() - began:.6f}", flush=True)
    for position in range(len(tokens), len(tokens) + 2):
        context.decode([context.greedy_token()], position, logits_last=True)
    context.close()
    model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Check that llama.cpp runs a model here (used by repochat).")
    parser.add_argument("model", type=Path)
    parser.add_argument("--extra-buffers", type=int, choices=(0, 1), default=1)
    parser.add_argument("--gpu-layers", type=int, default=0)
    args = parser.parse_args()
    try:
        _check(args.model, bool(args.extra_buffers), args.gpu_layers)
    except Exception as exc:  # a Python-level failure is reported as text, not as a crash
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
