"""The "Sources:" trailer's pieces that need no model: its grammar, its candidates and their order."""

from __future__ import annotations

from pathlib import Path

from repochat.answer.prompt import Prompt
from repochat.answer.references import Reference
from repochat.answer.sources import Span, _complete, candidate_spans, header, sources_grammar

WORKER = ('"""Worker."""\n\nBASE_DELAY = 0.5\nMAX_DELAY = 30.0\n\n\ndef backoff(attempt):\n'
          "    return min(BASE_DELAY * 2 ** attempt, MAX_DELAY)\n\n\ndef run(job):\n    return job()\n")


def _prompt(tmp_path: Path, files: dict[str, str], ranges: dict[str, tuple[int, int]] | None = None) -> Prompt:
    prompt = Prompt([])
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        prompt.shown.add(path, *(ranges or {}).get(path, (1, len(text.splitlines()))))
        prompt.paths.append(path)
    return prompt


def test_grammar_fixes_the_best_span_and_offers_the_next_ones_grouped_by_path() -> None:
    spans = [Span("a.py", 1, 5), Span("b.py", 2, 3), Span("a.py", 7, 9)]
    grammar = sources_grammar(spans)
    assert 'best ::= "a.py:" ("1-5")' in grammar
    assert 'cite ::= "b.py:" ("2-3") | "a.py:" ("7-9")' in grammar
    assert grammar.startswith('root ::= " " best (", " cite (", " cite )?)?')
    assert sources_grammar(spans[:1]) == 'root ::= " " best \nbest ::= "a.py:" ("1-5")\n'


def test_a_citation_cut_by_the_token_budget_is_dropped() -> None:
    spans = [Span("a.py", 1, 5), Span("b.py", 2, 30)]
    assert _complete(" a.py:1-5, b.py:2-3", spans) == " a.py:1-5"
    assert header("answer") == "\n\nSources:" and header("answer\n") == "\nSources:"


def test_candidates_put_named_definitions_first_then_the_spans_holding_the_answer(tmp_path: Path) -> None:
    prompt = _prompt(tmp_path, {"README.md": "# demo\n\nA worker.\n", "pkg/worker.py": WORKER})
    named = [Reference("pkg/worker.py", 11, 12, "run")]
    spans = candidate_spans(tmp_path, prompt, True, "It runs the job with `run`.", named)
    assert spans[0] == Span("pkg/worker.py", 11, 12)
    spans = candidate_spans(tmp_path, prompt, True, "The worker waits 0.5 seconds.", [])
    assert spans[0].path == "pkg/worker.py" and spans[0].start <= 3 <= spans[0].end  # BASE_DELAY = 0.5


def test_retrieval_candidates_are_the_excerpts_shown_and_nothing_outside_them(tmp_path: Path) -> None:
    prompt = _prompt(tmp_path, {"pkg/worker.py": WORKER}, {"pkg/worker.py": (7, 8)})
    outside = [Reference("pkg/worker.py", 11, 12, "run")]
    assert candidate_spans(tmp_path, prompt, False, "backoff doubles the delay", outside) == [
        Span("pkg/worker.py", 7, 8)]
