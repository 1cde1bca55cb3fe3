"""Retrieval evaluation: prepare the sources a cases file names, index a doc-stripped copy with repochat, and score
repochat's hybrid and full-text search against a plain BM25-over-windows control.

    cases = load_cases([Path("dev-needles.jsonl")])
    run = run_evaluation(cases, EvalOptions())
    print(as_table(run))
"""

from .bm25 import WindowBM25
from .cases import Case, EvalError, load_cases
from .copies import blank_lines, strip_set
from .metrics import gold_rank, summarize
from .report import as_json, as_table, figures
from .runner import CaseResult, EvalOptions, EvalRun, run_evaluation

__all__ = ["Case", "CaseResult", "EvalError", "EvalOptions", "EvalRun", "WindowBM25", "as_json", "as_table",
           "blank_lines", "figures", "gold_rank", "load_cases", "run_evaluation", "strip_set", "summarize"]
