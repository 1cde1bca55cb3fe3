"""Which CPU path llama.cpp takes for the weights, chosen so that it works on every CPU llama.cpp supports.

llama.cpp can place weights in "extra" CPU buffer types: AMX tiles on Intel Xeons that have them, and repacked
(interleaved) Q4/Q8 layouts elsewhere, all behind one switch (``use_extra_bufts``). The AMX path of
llama-cpp-python 0.3.36 segfaults on the first decode (upstream bug, unfixed), so on an AMX CPU "auto" turns the
switch off. Elsewhere repacking pays: tests/bench/bench_cpu_path.py on an idle 2-core AVX-512 machine, 2,048-token
prefill of the default model, 4 alternating rounds: repacked 254.7 tok/s, plain 187.0 (decode 49.2 and 42.8); with
the cores busy the two were within 5% of each other.
"""

from __future__ import annotations

import platform
from functools import lru_cache

_VECTOR_FLAGS = ("avx512f", "avx2", "avx", "neon", "asimd")  # the widest one found names the path


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def has_amx(flags: frozenset[str] | None = None) -> bool:
    return any(flag.startswith("amx") for flag in (cpu_flags() if flags is None else flags))


def use_extra_buffers(setting: str, flags: frozenset[str] | None = None) -> bool:
    """Whether llama.cpp may use its extra CPU buffer types (AMX, repacked weights) for this setting (auto/on/off,
    checked by config): auto means yes unless the CPU has AMX."""
    if setting == "auto":
        return not has_amx(flags)
    return setting == "on"


def describe_cpu_path(extra_buffers: bool, flags: frozenset[str] | None = None) -> str:
    """One line for `repochat models` / `status`: the CPU, its widest vector unit and the weight layout used."""
    flags = cpu_flags() if flags is None else flags
    vector = next((flag.upper() for flag in _VECTOR_FLAGS if flag in flags), platform.machine() or "generic")
    amx = " with AMX" if has_amx(flags) else ""
    if extra_buffers:
        layout = "AMX / repacked weights" if amx else "repacked weights"
    else:
        layout = "plain weights" + (" (AMX path off: it crashes in llama.cpp)" if amx else "")
    return f"{vector}{amx}: {layout}"
