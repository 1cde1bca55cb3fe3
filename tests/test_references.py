"""References repochat adds to an answer (repochat.answer.references): names written as code, looked up with the real
tree-sitter grammars in files on disk. The model-backed check is in test_ask.py."""

from __future__ import annotations

from pathlib import Path

from repochat.answer.prompt import Prompt
from repochat.answer.references import Reference, answer_references, named_in_answer

QUEUE = '''"""A queue."""

MAX_RETRIES = 3


class UnknownJob(KeyError):
    """No job of that name."""


def pop_ready(queue, now):
    for job in queue:
        if job.due <= now:
            return job
    return None
'''


SHOWN_TEXTS = {"pkg/queue.py": QUEUE}


def _context(tmp_path: Path, shown_to: int = 14) -> Prompt:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "queue.py").write_text(QUEUE)
    prompt = Prompt([], paths=["pkg/queue.py"])
    prompt.shown.add("pkg/queue.py", 1, shown_to)
    return prompt


def test_names_written_as_code_are_found_in_order() -> None:
    answer = "Call `Queue.pop_ready()`; it raises UnknownJob, retries up to MAX_RETRIES via backoff() and so on."
    assert named_in_answer(answer) == ["Queue", "pop_ready", "UnknownJob", "MAX_RETRIES", "backoff"]


def test_plain_english_names_nothing() -> None:
    assert named_in_answer("The worker waits half a second, then tries again. It is simple (mostly).") == []


def test_definitions_of_named_code_become_references(tmp_path: Path) -> None:
    prompt = _context(tmp_path)
    answer = "The function is `pop_ready`; an unknown name raises UnknownJob. MAX_RETRIES is 3."
    assert answer_references(answer, tmp_path, prompt, SHOWN_TEXTS) == [
        Reference("pkg/queue.py", 10, 14, "pop_ready"), Reference("pkg/queue.py", 6, 7, "UnknownJob"),
        Reference("pkg/queue.py", 3, 3, "MAX_RETRIES")]


def test_lines_the_model_was_not_shown_are_not_referenced(tmp_path: Path) -> None:
    prompt = _context(tmp_path, shown_to=8)  # an excerpt that stops before pop_ready
    assert answer_references("It is `pop_ready`.", tmp_path, prompt, SHOWN_TEXTS) == []


def test_names_that_are_not_defined_in_the_context_give_nothing(tmp_path: Path) -> None:
    assert answer_references("Use `requests.get_json` here.", tmp_path, _context(tmp_path), SHOWN_TEXTS) == []
