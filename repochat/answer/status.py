"""`repochat status`: the index, what was left out and why, and the plan for asking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings
from ..engine.cpu import describe_cpu_path, use_extra_buffers
from ..errors import IndexMissing, RepochatError
from ..index.store import IndexStore


def repository_status(root: Path, settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {"repository": {"root": str(root), "index": str(settings.index_path(root))},
                              "engine": _remote_status(root, settings) if settings.engine else engine_status(settings)}
    try:
        store = IndexStore.open(settings.index_path(root))
    except IndexMissing as exc:  # whole-repository asks need no index: the plan still applies
        report["index"] = {"state": str(exc)}
        report["plan"] = _plan(root, settings, None)
        report["prefill"] = prefill_status(settings, report["plan"])
        return report
    report["index"] = index_counts(store)
    report["skipped"] = store.skip_counts() or {"none": 0}
    report["plan"] = _plan(root, settings, report["index"]["tokens"])
    report["prefill"] = prefill_status(settings, report["plan"])
    return report


def engine_status(settings: Settings) -> dict[str, Any]:
    """Which CPU path llama.cpp takes (the extra buffer types are off on AMX CPUs unless asked for)."""
    extra = use_extra_buffers(settings.cpu_extra_buffers)
    return {"cpu_path": describe_cpu_path(extra), "cpu_extra_buffers": settings.cpu_extra_buffers}


def prefill_status(settings: Settings, plan: dict[str, Any]) -> dict[str, Any]:
    """This machine's measured prefill speed for the planned model, and what the plan's context costs to prefill:
    the whole repository from nothing (cold), and what the KV cache leaves to do now (the plan's prefill_spans)."""
    from ..engine.throughput import cost_model, describe_seconds

    spans = plan.pop("prefill_spans", None)  # priced here, not shown
    if "model" not in plan:
        return {"state": "no model"}
    model = cost_model(settings, Path(plan["model"]))
    if model is None:
        return {"rate_tokens_per_s": None, "state": "not measured on this machine yet (the first ask measures it)"}
    report: dict[str, Any] = {"rate_tokens_per_s": round(model.rate(), 1)}
    if plan.get("mode") == "whole":
        cold = model.seconds(plan["repo_tokens"])
        report.update(cold_prefill_s=round(cold, 1), cold_prefill=f"~{describe_seconds(cold)} on this machine")
        needed = sum(model.seconds(tokens, start) for tokens, start in spans or [])
        report.update(prefill_now_s=round(needed, 1), prefill_now=f"~{describe_seconds(needed)} (cache: "
                                                                  f"{plan.get('cache', 'unknown')})")
    elif plan.get("retrieval_tokens"):
        retrieval = model.seconds(plan["retrieval_tokens"])
        report.update(retrieval_prefill_s=round(retrieval, 1),
                      retrieval_prefill=f"~{describe_seconds(retrieval)} for {plan['retrieval_tokens']:,} tokens")
    return report


def index_counts(store: IndexStore) -> dict[str, Any]:
    from ..index.indexer import count_pending_embeddings

    files = store.table("files").search().select(["status", "tokens"]).limit(None).to_arrow().to_pylist()
    indexed = [f for f in files if f["status"] == "indexed"]
    return {
        "files": len(indexed),
        "chunks": store.table("chunks").count_rows(),
        "symbols": store.table("symbols").count_rows(),
        "vectors": store.table("vectors").count_rows() if store.has_vectors() else 0,
        "vectors_pending": count_pending_embeddings(store),
        "tokens": sum(f["tokens"] for f in indexed),
        "embedder": store.meta.get("embedder", ""),
    }


def _plan(root: Path, settings: Settings, repo_tokens: int | None) -> dict[str, Any]:
    """The memory planner's decision; a missing model is reported, not fatal, since status must always work."""
    try:
        from .ask import status_plan

        return status_plan(root, settings)
    except ImportError:
        return {"state": "engine not available"}
    except RepochatError as exc:
        estimate = {} if repo_tokens is None else {"repo_tokens_estimate": repo_tokens}
        return {"state": f"no plan: {exc}", **estimate}


def _remote_status(root: Path, settings: Settings) -> dict[str, Any]:
    """The engine server's state and plan (ask_remote); the plan below is the local model's."""
    from .remote import remote_status

    return remote_status(root, settings)
