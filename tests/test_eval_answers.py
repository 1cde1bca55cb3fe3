"""The answer benchmark's scoring (tests/devtools/evaluate/answers.py) on hand-written answers: pure text logic, no model."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.evaluate import load_cases
from devtools.evaluate.answer_run import (AnswerRow, as_table, line_window, pick_cases, question_for, small_copy,
                                          summary)
from devtools.evaluate.answers import (files_named, files_pointed_at, first_code_name, named_as_code, path_words,
                                       resolve_path_word, score_localization, score_needle, short_name)

FILES = ["taskq/queue.py", "taskq/worker.py", "taskq/results.py", "taskq/__init__.py", "tests/__init__.py",
         "README.md"]


def test_named_in_backticks_counts() -> None:
    assert named_as_code("The method is `pop_due` in taskq/queue.py.", "pop_due")
    assert named_as_code("It is `Queue.pop_due()`.", "pop_due")
    assert named_as_code("Call `q.pop_due(now)` to get it.", "pop_due")


def test_named_as_a_call_counts() -> None:
    assert named_as_code("Queue.pop_due() takes the next job.", "pop_due")
    assert named_as_code("use pop_due(now)", "pop_due")


def test_name_in_a_fenced_block_counts() -> None:
    assert named_as_code("Here:\n```python\ndef pop_due(self, now):\n    ...\n```\n", "pop_due")
    assert named_as_code("Here:\n```python\n    def pop_due(self, now):", "pop_due")  # unclosed fence


def test_plain_prose_or_the_class_alone_does_not_count() -> None:
    assert not named_as_code("The pop_due method of the queue does it.", "pop_due")
    assert not named_as_code("It is the `Queue` class in taskq/queue.py.", "pop_due")
    assert not named_as_code("It is `Queue`, see pop_due (below).", "pop_due")


def test_a_longer_identifier_is_not_the_name() -> None:
    assert not named_as_code("It is `pop_due_later`.", "pop_due")
    assert not named_as_code("It is `_pop_due`.", "pop_due")
    assert not named_as_code("repop_due(x)", "pop_due")
    assert not named_as_code("It is `Pop_due`.", "pop_due")  # case-sensitive


def test_short_name() -> None:
    assert short_name("Queue.pop_due") == "pop_due"
    assert short_name("pkg::mod::run") == "run"
    assert short_name("main") == "main"


def test_path_words_and_resolution() -> None:
    words = path_words("See taskq/queue.py:56-61, and `worker.py`. Also ./taskq/results.py.")
    assert words == ["taskq/queue.py", "worker.py", "taskq/results.py"]
    assert resolve_path_word("queue.py", FILES) == "taskq/queue.py"
    assert resolve_path_word("taskq/queue.py", FILES) == "taskq/queue.py"
    assert resolve_path_word("__init__.py", FILES) is None  # ambiguous: names no file
    assert resolve_path_word("taskq.queue", FILES) == "taskq/queue.py"  # a dotted module
    assert resolve_path_word("taskq.queue.Queue.pop_due", FILES) == "taskq/queue.py"
    assert resolve_path_word("Queue.pop_due", FILES) is None
    assert resolve_path_word("ueue.py", FILES) is None  # a tail only at a folder boundary
    assert resolve_path_word("e.g", FILES) is None


def test_files_named_in_order_of_first_mention() -> None:
    answer = "In `worker.py` the loop calls taskq/queue.py, then worker.py again and taskq.results."
    assert files_named(answer, FILES) == ["taskq/worker.py", "taskq/queue.py", "taskq/results.py"]


def test_needle_right_cited_and_file_named() -> None:
    answer = "The method is `Queue.pop_due` in taskq/queue.py (taskq/queue.py:56-61)."
    citations = [{"path": "taskq/queue.py", "start": 56, "end": 61, "valid": True}]
    score = score_needle(answer, "pop_due", "taskq/queue.py", 55, 62, citations, [], FILES)
    assert score.right and score.named_file and score.cited and score.citation_hit and score.located


def test_needle_only_the_class_is_not_right() -> None:
    answer = "It is the `Queue` class in queue.py."
    score = score_needle(answer, "pop_due", "taskq/queue.py", 55, 62, [], [], FILES)
    assert not score.right and score.named_file and not score.cited


def test_needle_citation_must_be_valid_and_overlap() -> None:
    elsewhere = [{"path": "taskq/queue.py", "start": 10, "end": 20, "valid": True}]
    invalid = [{"path": "taskq/queue.py", "start": 56, "end": 61, "valid": False}]
    other_file = [{"path": "taskq/worker.py", "start": 56, "end": 61, "valid": True}]
    for citations in (elsewhere, invalid, other_file):
        assert not score_needle("`pop_due`", "pop_due", "taskq/queue.py", 55, 62, citations, [], FILES).cited
    touching = [{"path": "taskq/queue.py", "start": 62, "end": 70, "valid": True}]  # shares line 62
    assert score_needle("`pop_due`", "pop_due", "taskq/queue.py", 55, 62, touching, [], FILES).cited


def test_needle_reference_counts_as_cited() -> None:
    references = [{"path": "taskq/queue.py", "start": 55, "end": 62, "symbol": "Queue.pop_due"}]
    score = score_needle("It is `pop_due`.", "pop_due", "taskq/queue.py", 55, 62, [], references, FILES)
    assert score.cited and score.reference_hit and not score.citation_hit and not score.named_file


def test_localization_first_and_first_three() -> None:
    gold = ["taskq/results.py"]
    first = score_localization("Change taskq/results.py, then taskq/worker.py.", gold, files=FILES)
    assert first.first and first.top3 and first.named
    third = score_localization("Change `queue.py`, `worker.py` and `results.py`.", gold, files=FILES)
    assert not third.first and third.top3 and third.pointed[:3] == ["taskq/queue.py", "taskq/worker.py",
                                                                    "taskq/results.py"]
    fourth = score_localization("queue.py, worker.py, README.md and results.py", gold, files=FILES)
    assert not fourth.first and not fourth.top3 and fourth.named
    none = score_localization("No file needs to change.", gold, files=FILES)
    assert not none.first and not none.top3 and not none.named and none.pointed == []


def test_localization_citations_then_references_after_the_text() -> None:
    citations = [{"path": "taskq/worker.py", "start": 1, "end": 3, "valid": True}]
    references = [{"path": "taskq/results.py", "start": 22, "end": 25, "symbol": "ResultStore"}]
    pointed = files_pointed_at("Look at queue.py.", citations, references, FILES)
    assert pointed == ["taskq/queue.py", "taskq/worker.py", "taskq/results.py"]
    score = score_localization("Look at queue.py.", ["taskq/results.py"], citations, references, FILES)
    assert score.top3 and score.cited and not score.first
    bad = [{"path": "repository map", "start": 1, "end": 2, "valid": False}]
    assert files_pointed_at("nothing", bad, [], FILES) == []  # an invalid citation of no file is no file


def test_cases_carry_the_needle_name(tmp_path: Path) -> None:
    cases_file = tmp_path / "cases.jsonl"
    rows = [{"suite": "needle-docstring", "source": {"kind": "dir", "path": "."}, "path": "taskq/queue.py",
             "symbol": "Queue.pop_due", "short_name": "pop_due", "start_line": 5, "end_line": 9, "query": "Take it.",
             "id": "a"},
            {"suite": "file-localization", "source": {"kind": "dir", "path": "."}, "query": "It breaks.",
             "gold_files": ["taskq/results.py"], "id": "b"}]
    cases_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    needle, issue = load_cases([cases_file])
    assert needle.symbol == "Queue.pop_due" and needle.short_name == "pop_due"
    assert question_for(needle) == "Which function or method does the following: 'Take it.'? Name it and its file."
    assert question_for(issue).startswith("Which files would need to change to resolve this issue?\n\nIt breaks.")
    assert pick_cases([needle, issue], suites=["file-localization"]) == [issue]
    assert len(pick_cases([needle, issue], sample=1, seed=3)) == 1
    assert pick_cases([needle, issue], sample=1, seed=3) == pick_cases([needle, issue], sample=1, seed=3)


def test_line_window_keeps_the_function_and_counts_the_cut() -> None:
    text = "".join(f"line number {i} of the file\n" for i in range(1, 201))
    window, cut = line_window(text, 100, 104, 60)
    lines = window.splitlines()
    assert "line number 100 of the file" in lines and "line number 104 of the file" in lines
    assert lines[0] == f"line number {cut + 1} of the file" and 5 <= len(lines) < 200


def test_small_copy_keeps_own_file_and_nearest(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "other").mkdir()
    (tree / "pkg" / "a.py").write_text("def f():\n    return 1\n")
    (tree / "pkg" / "b.py").write_text("def g():\n    return 2\n")
    (tree / "other" / "big.py").write_text("x = 1\n" * 2000)
    rows = [{"suite": "needle-docstring", "source": {"kind": "dir", "path": str(tree)}, "path": "pkg/a.py",
             "symbol": "f", "start_line": 1, "end_line": 2, "query": "f", "id": "f"}]
    cases_file = tmp_path / "c.jsonl"
    cases_file.write_text(json.dumps(rows[0]) + "\n")
    (case,) = load_cases([cases_file])
    small, offset = small_copy(tree, case, 200, tmp_path / "small")
    assert offset == 0
    assert sorted(p.relative_to(small).as_posix() for p in small.rglob("*.py")) == ["pkg/a.py", "pkg/b.py"]


def test_table_and_summary() -> None:
    rows = [AnswerRow(id="a", suite="needle-docstring", package="p", model="default", effort="low",
                      mode="retrieval", ttft_s=10, total_s=20, right=True, named_file=True, cited=False,
                      control=True, citations=1, valid_citations=1),
            AnswerRow(id="b", suite="needle-docstring", package="p", model="default", effort="low",
                      mode="retrieval", ttft_s=30, total_s=40)]
    (line,) = summary(rows)
    assert line["right"] == 1 and line["control"] == 1 and line["median_ttft_s"] == 20.0 and line["n"] == 2
    table = as_table(rows)
    assert "needle-docstring:" in table and "1/2 0.50" in table and "retrieval 2" in table


def test_an_echo_of_the_question_does_not_count() -> None:
    query = "Dict-like values() that returns a list of values of cookies from the jar."
    echo = "The function that does the following: 'Dict-like values() that returns a list of values' is 'itervalues()'."
    assert named_as_code(echo, "values")  # raw text: the echoed docstring holds values(
    assert not score_needle(echo, "values", "r/cookies.py", 1, 5, query=query).right
    whole = "Dict-like values() that returns a list of values of cookies\n from the jar. It is `itervalues`."
    assert not score_needle(whole, "values", "r/cookies.py", 1, 5, query=query).right
    own = "It is `values()` ('values()' is short, kept)."
    assert score_needle(own, "values", "r/cookies.py", 1, 5, query=query).right
    issue = "Crash in taskq/worker.py:40 when a job raises"
    echoed = f"You asked: \"{issue}\". Change taskq/results.py."
    score = score_localization(echoed, ["taskq/results.py"], files=FILES, query=issue)
    assert score.first and score.pointed == ["taskq/results.py"]


def test_first_name_written_as_code() -> None:
    assert first_code_name("It is `ProgressBar.update` in `src/click/_termui_impl.py`.") == "update"
    assert first_code_name("See `core.py`: `Context.forward(cmd)` does it.") == "forward"
    assert first_code_name("It is `invoke`; the `forward` method registers callbacks.") == "invoke"
    assert first_code_name("Call q.pop_due(now), not `pop`.") == "pop_due"
    assert first_code_name("```python\ndef helper():\n```\nIt is `pop_due`.") == "pop_due"
    assert first_code_name("No code here.") == ""
    wrong_first = score_needle("It is `invoke`; the `forward` method registers callbacks.", "forward", "c.py", 1, 9)
    assert wrong_first.right and not wrong_first.first
    assert score_needle("It is `Context.forward`.", "forward", "c.py", 1, 9).first


def test_line_window_cuts_at_definitions_and_keeps_the_class() -> None:
    body = ['class Queue:\n', '    """A queue.\n', '\n', '    Many words here.\n', '    """\n']
    for n in range(30):
        body += [f'    def m{n}(self):\n', '        """Doc\n', f'        string {n}."""\n', f'        return {n}\n']
    text = "".join(body)
    target = next(i for i, line in enumerate(body, 1) if "def m15(" in line)
    window, offset = line_window(text, target, target + 3, 60, python=True)
    lines = window.splitlines()
    assert lines[0] == "class Queue:" and lines[1].startswith("    def m")  # no cut inside a docstring
    assert lines[target - offset - 1] == "    def m15(self):"  # original line L is line L - offset
    assert lines[-1].strip().startswith("return")  # ends before the next definition
