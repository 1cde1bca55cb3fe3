"""Where the code an answer names is defined: references repochat adds to an answer, beside the model's citations.

A small model often answers right but cites nothing ("the method is `pop_ready`"), or cites lines it never saw. The
names an answer writes as code (in backticks, or spelled like identifiers: ``snake_case``, ``CamelCase``,
``CONSTANT_CASE``, ``call()``) are looked up among the definitions of the files that were in the context, with the
same tree-sitter grammars the index uses, and each one found becomes a ``path:start-end`` reference. Only lines the
model was shown count, so a reference is as checkable as a valid citation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..index.parse import ParsedFile, parse_file
from .prompt import Prompt
from ..repo.walk import read_text

MAX_REFERENCES = 5
# Names an answer writes as code. Not retrieve/excerpts.py's question names on purpose: a question names code dotted
# (``Queue.requeue``, kept whole for the definition lookup), an answer writes it in backticks or as a call (``run()``),
# and each side's rule finds names the other would miss or mistake for prose.
_BACKTICKED = re.compile(r"`([^`\n]{2,80})`")
# snake_case, CONSTANT_CASE, CamelCase (two humps at least) or a name written as a call
_CODE_LIKE = re.compile(r"\b([A-Za-z_]\w*_\w+|[A-Z][a-z0-9]+[A-Z]\w*|[a-z]+[A-Z]\w*|[A-Za-z_]\w{2,}(?=\())")
_NAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Reference:
    path: str
    start: int
    end: int
    symbol: str


def named_in_answer(answer: str) -> list[str]:
    """Identifiers the answer writes as code, in order of first mention (``Queue.pop_ready()`` gives both parts)."""
    found: list[str] = []
    for code in _BACKTICKED.findall(answer):
        found += _NAME.findall(code)
    found += _CODE_LIKE.findall(_BACKTICKED.sub(" ", answer))
    return [name for name in dict.fromkeys(found) if len(name) >= 3]


def answer_references(answer: str, root: Path, prompt: Prompt, shown_texts: Mapping[str, str],
                      limit: int = MAX_REFERENCES) -> list[Reference]:
    """Definitions of the names the answer mentions, in the files of the context and within the lines shown.
    ``shown_texts``: each context file's text as the prompt has it (rendered is fine): only the files that contain a
    name are read from disk and parsed, each once."""
    names = named_in_answer(answer)
    parsed: dict[str, ParsedFile | None] = {}
    found: list[Reference] = []
    for name in names:
        for path in prompt.paths:
            if name not in shown_texts.get(path, ""):
                continue
            if path not in parsed:
                text = read_text(root, path)
                parsed[path] = None if text is None else parse_file(path, text)
            found += [r for r in _definitions(parsed[path], name) if prompt.shown.covers(r.path, r.start, r.end)]
        if len(found) >= limit:
            break
    return list(dict.fromkeys(found))[:limit]


def _definitions(parsed: ParsedFile | None, name: str) -> list[Reference]:
    """The chunks that define ``name`` in this file (a method by its own name or qualified), else the lines of its
    other definitions (a constant, an attribute) from the symbols the grammar extracts."""
    if parsed is None:
        return []
    chunks = [Reference(c.path, c.start_line, c.end_line, c.symbol) for c in parsed.chunks
              if c.symbol and c.symbol.rsplit(".", 1)[-1] == name]
    if chunks:
        return chunks
    return [Reference(s.path, s.line, s.line, s.name) for s in parsed.symbols
            if s.role == "definition" and s.name == name]
