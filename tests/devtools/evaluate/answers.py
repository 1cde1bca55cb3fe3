"""Scoring an answer that `repochat ask` wrote, as a user would read it (pure text logic, no model).

Needle questions ("Which function or method does the following: '<docstring>'? Name it and its file."):

- **right**: the function is *named as code*. Its short name (``pop_due`` for ``Queue.pop_due``) appears, as a
  whole identifier, either inside code — an inline backtick span (`` `pop_due` ``, `` `Queue.pop_due()` ``,
  `` `q.pop_due(now)` ``) or a fenced code block — or anywhere written as a call, ``pop_due(`` with no space before
  the parenthesis. "Whole identifier" means the characters either side are not letters, digits or underscores, so
  `` `pop_due_later` `` does not name ``pop_due`` but ``Queue.pop_due`` does. Matching is case-sensitive. The name in
  plain prose ("the pop_due method") does not count, and neither does naming only the class (`` `Queue` ``).
- **first**: stricter, the function is the *first* name the answer writes as code: the first inline backtick span
  or ``name(`` call that is not a file path, a dotted name counting as its last part (`` `ProgressBar.update` `` is
  ``update``). "It is `invoke`; the `forward` method registers ..." names ``forward`` (right) but not first.
- **cited**: a valid citation (lines that really were in the context) or one of repochat's "defined at" references
  overlaps the function's lines in its file.
- **named file**: the function's file is among the files the answer text names (see below).

File-localization questions ("Which files would need to change to resolve this issue?"):

- The files the answer points at, in order: the files its text names, in order of first appearance (citations are
  part of the text, so a cited file counts where its citation stands), then the files of its citations, then those of
  repochat's references, each file once.
- **first**: the first of them is a gold file; **top3**: one of the first three is; **named**: any of them is.

Echoes do not count: a small model often repeats the question ("The function that does 'Dict-like values()
that ...' is ..."), and the docstring or issue text may itself hold the name (``values()``) or file paths (a
traceback). Before scoring, every copy of the case's query text in the answer (whitespace-insensitive) and every
quoted run of 12 characters or more that is a piece of the query are removed (strip_echo).

A file is *named* by a path-like word of the answer that resolves to exactly one file of the repository the question
was asked about: the whole path (``src/click/core.py``), a tail of it at a ``/`` boundary (``click/core.py``,
``core.py``), or a dotted Python module, possibly followed by attributes (``click.core``, ``click.core.Context``:
the longest prefix of at least two parts that is ``a/b.py`` or ``a/b/__init__.py``). A word that fits several files
(a bare ``__init__.py`` in a package of many) names none of them. Trailing sentence punctuation and a ``:line``
suffix are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Mapping, Sequence

_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)  # an unclosed fence runs to the end of the answer
_INLINE = re.compile(r"`([^`\n]+)`")
_PATH_WORD = re.compile(r"[\w./-]+")


_QUOTED = re.compile(r"'([^'\n]{12,})'|\"([^\"\n]{12,})\"")
MIN_ECHO_CHARS = 12


def _squash(text: str) -> str:
    return " ".join(text.split())


def strip_echo(answer: str, query: str) -> str:
    """``answer`` without the copies of ``query`` it holds: the whole query (whitespace-insensitive), and quoted
    runs ('...' or "...") of MIN_ECHO_CHARS characters or more that are a piece of it."""
    words = query.split()
    if not words:
        return answer
    answer = re.sub(r"\s+".join(re.escape(w) for w in words), " ", answer)
    squashed = _squash(query)

    def drop(match: re.Match[str]) -> str:
        inner = _squash(match.group(1) or match.group(2))
        return " " if len(inner) >= MIN_ECHO_CHARS and inner in squashed else match.group(0)

    return _QUOTED.sub(drop, answer)


def code_texts(answer: str) -> list[str]:
    """The answer's code: fenced blocks (fences included, harmless) and inline backtick spans, in order."""
    fenced = _FENCED.findall(answer)
    rest = _FENCED.sub("\n", answer)
    return fenced + _INLINE.findall(rest)


def _whole_identifier(name: str) -> str:
    return rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])"


def named_as_code(answer: str, name: str) -> bool:
    """Whether ``name`` is written as code in ``answer``: in backticks or a fenced block, or as a call ``name(``."""
    if not name:
        return False
    whole = re.compile(_whole_identifier(name))
    if any(whole.search(code) for code in code_texts(answer)):
        return True
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}\(", answer) is not None


_DOTTED = re.compile(r"[A-Za-z_]\w*(?:(?:\.|::)[A-Za-z_]\w*)*")
_CALL = re.compile(r"(?<![A-Za-z0-9_.])((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)\(")


def first_code_name(answer: str) -> str:
    """The first name the answer writes as code outside fenced blocks (inline span or call), dotted names reduced to
    their last part; spans that are file paths (``a/b.py``, ``core.py``) are passed over. "" when none."""
    rest = _FENCED.sub(lambda m: " " * len(m.group(0)), answer)
    found: list[tuple[int, str]] = []
    for match in _INLINE.finditer(rest):
        code = match.group(1).strip()
        if "/" in code or re.fullmatch(r"[\w.-]+\.(py|pyi|js|jsx|ts|tsx|go|rs|java|c|h|cc|cpp|hpp|rb|md|txt|toml|"
                                        r"cfg|json|yaml|yml)", code):
            continue
        name = _DOTTED.search(code)
        if name:
            found.append((match.start(), short_name(name.group(0))))
    outside = _INLINE.sub(lambda m: " " * len(m.group(0)), rest)
    found += [(m.start(), short_name(m.group(1))) for m in _CALL.finditer(outside)]
    return min(found)[1] if found else ""


def short_name(symbol: str) -> str:
    """``Queue.pop_due`` -> ``pop_due``; ``pkg::mod::f`` -> ``f``."""
    return re.split(r"\.|::", symbol)[-1] if symbol else ""


def path_words(answer: str) -> list[str]:
    """Words that may name a file (they hold a ``.`` or a ``/``), cleaned of sentence punctuation, in order."""
    words = []
    for match in _PATH_WORD.finditer(answer):
        word = match.group(0).rstrip("./-")
        while word.startswith("./"):
            word = word[2:]
        word = word.lstrip("/")
        if ("." in word or "/" in word) and any(c.isalnum() for c in word):
            words.append(word)
    return words


def resolve_path_word(word: str, files: Collection[str]) -> str | None:
    """The one repository file ``word`` names, or None (no file, or several)."""
    if word in files:
        return word
    tails = [f for f in files if f.endswith("/" + word)]
    if len(tails) == 1:
        return tails[0]
    if tails or "/" in word:
        return None
    parts = word.split(".")
    for cut in range(len(parts), 1, -1):  # dotted module, longest prefix of at least two parts first
        module = "/".join(parts[:cut])
        for candidate in (module + ".py", module + "/__init__.py"):
            if candidate in files:
                return candidate
            tails = [f for f in files if f.endswith("/" + candidate)]
            if len(tails) == 1:
                return tails[0]
            if tails:
                return None
    return None


def files_named(answer: str, files: Collection[str]) -> list[str]:
    """Distinct repository files the answer text names, in order of first mention."""
    found: dict[str, None] = {}
    for word in path_words(answer):
        path = resolve_path_word(word, files)
        if path is not None:
            found.setdefault(path, None)
    return list(found)


def files_pointed_at(answer: str, citations: Sequence[Mapping[str, Any]], references: Sequence[Mapping[str, Any]],
                     files: Collection[str]) -> list[str]:
    """The files an answer points at, in order: named in its text, then cited, then referenced by repochat."""
    found = dict.fromkeys(files_named(answer, files))
    for item in citations:
        if item.get("valid") or item.get("path") in files:
            found.setdefault(str(item["path"]), None)
    for item in references:
        found.setdefault(str(item["path"]), None)
    return list(found)


def _overlaps(item: Mapping[str, Any], path: str, start: int, end: int) -> bool:
    return item.get("path") == path and int(item["start"]) <= end and int(item["end"]) >= start


@dataclass(frozen=True)
class NeedleScore:
    right: bool  # the function named as code
    cited: bool  # a valid citation or a reference overlapping the function
    named_file: bool  # the function's file named in the text
    first: bool = False  # the function is the first name written as code
    citation_hit: bool = False  # the model's own valid citation overlaps the function
    reference_hit: bool = False  # one of repochat's "defined at" references does

    @property
    def located(self) -> bool:
        """Named and pointed at: right, and the file named or the lines cited."""
        return self.right and (self.cited or self.named_file)


def score_needle(answer: str, name: str, path: str, start: int, end: int,
                 citations: Sequence[Mapping[str, Any]] = (), references: Sequence[Mapping[str, Any]] = (),
                 files: Collection[str] = (), query: str = "") -> NeedleScore:
    """Score a needle answer for the function ``name`` at ``path`` lines ``start``-``end``; ``files``: the
    repository's files (for resolving the file names the answer writes; the case's own path always counts);
    ``query``: the docstring asked about, whose echoes in the answer do not count."""
    answer = strip_echo(answer, query)
    known = set(files) | {path}
    citation_hit = any(c.get("valid") and _overlaps(c, path, start, end) for c in citations)
    reference_hit = any(_overlaps(r, path, start, end) for r in references)
    return NeedleScore(right=named_as_code(answer, name), cited=citation_hit or reference_hit,
                       named_file=path in files_named(answer, known), first=first_code_name(answer) == name,
                       citation_hit=citation_hit, reference_hit=reference_hit)


@dataclass(frozen=True)
class LocalizationScore:
    first: bool  # the first file pointed at is a gold file
    top3: bool  # one of the first three is
    named: bool  # any is (named, cited or referenced)
    cited: bool  # a gold file has a valid citation or a reference
    pointed: list[str] = field(default_factory=list)  # the files, in order


def score_localization(answer: str, gold_files: Iterable[str], citations: Sequence[Mapping[str, Any]] = (),
                       references: Sequence[Mapping[str, Any]] = (), files: Collection[str] = (),
                       query: str = "") -> LocalizationScore:
    """Score a localization answer against ``gold_files``; ``query``: the issue text, whose echoes do not count."""
    answer = strip_echo(answer, query)
    gold = set(gold_files)
    pointed = files_pointed_at(answer, citations, references, set(files) | gold)
    cited = any(c.get("valid") and c.get("path") in gold for c in citations) or any(
        r.get("path") in gold for r in references)
    return LocalizationScore(first=bool(pointed) and pointed[0] in gold, top3=any(p in gold for p in pointed[:3]),
                             named=any(p in gold for p in pointed), cited=cited, pointed=pointed)
