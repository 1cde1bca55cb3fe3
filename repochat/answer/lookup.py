"""Lookups answered from the index, without the model: "where is X defined", "who calls X", "where is X used",
"what does X call" (and their Japanese wordings, repochat.answer.lookup_phrases).

The symbols table already knows the answer, exactly and in milliseconds, where a small model reading excerpts often
names the wrong place. So a question worded as one of these lookups, about a name the index has, is answered here:
the definitions as ``path:start-end`` citations with their signature line, then the call sites or uses grouped by
file. Line ranges come from the files as they are now (their definitions parsed again with the index's grammars),
and a call site is shown only where its line still holds the name, so a stale index cannot produce a wrong
citation. Anything else (another question, an unknown name, no index) returns None and the model answers.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import lookup_phrases as phrases
from ..config import Settings
from ..errors import IndexStoreError
from .render import ShownLines, check_citations

if TYPE_CHECKING:
    from .ask import AskResult
    from ..index.store import IndexStore

MAX_DEFINITIONS = 8  # an ambiguous name (many classes with a `run`): the rest are counted
MAX_DEFINITION_FILES = 16  # files parsed for their definitions (`__init__` is in thousands): the rest are counted
MAX_SITES = 20  # call sites or uses shown; the rest are counted, with their files
MAX_SITE_FILES = 8
MAX_CHECKS = 200  # sites checked against their files before giving up on a stale index
MAX_SIGNATURE_CHARS = 160
_PATTERNS = tuple((intent, re.compile(pattern, re.IGNORECASE)) for intent, pattern in phrases.PHRASINGS)
# A test file or folder: its definitions and uses are listed after the others.
_TEST_PATH = re.compile(r"(?:^|/)(?:tests?|testing|spec|__tests__)(?:/|$)|(?:^|/)test_[^/]*$|_test\.\w+$"
                        r"|\.(?:test|spec)\.\w+$")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@dataclass(frozen=True)
class Lookup:
    intent: str  # "definition", "callers", "usages" or "callees"
    name: str  # as asked: "backoff_delay", "Queue.requeue"
    language: str  # "en" or "ja": the language of the answer



@dataclass(frozen=True)
class Span:
    """A definition as the file has it now."""

    path: str
    start: int
    end: int
    symbol: str  # qualified: "Worker._failed"
    kind: str
    signature: str  # its line that names it


@dataclass(frozen=True)
class Site:
    """A call or use: the line, and the definition it occurs in ("" = module level)."""

    path: str
    line: int
    scope: str
    name: str


@dataclass(frozen=True)
class Sites:
    shown: list[Site]  # checked against the files as they are now
    more: int  # not shown (over the caps), in more_files files
    more_files: int
    files: int  # all files with a site, shown or not

    @property
    def total(self) -> int:
        return len(self.shown) + self.more


def parse_lookup(question: str) -> Lookup | None:
    """The lookup a question asks for, or None when it is worded as anything else."""
    text = re.sub(phrases.TRAILING, "", question.strip())
    text = re.sub(phrases.POLITE_ENDINGS, "", text).strip()
    for intent, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match and match.group("name").lower() not in phrases.NOT_NAMES:
            name = match.group("name").replace("::", ".").replace("#", ".")
            return Lookup(intent, name, "ja" if _JAPANESE.search(question) else "en")
    return None


def lookup_answer(root: Path, question: str, settings: Settings) -> AskResult | None:
    """The answer to a lookup question from the index alone (no model), or None: not a lookup, no index, or a name
    the index does not know. Opens the index read-only; never builds or changes it."""
    started = time.monotonic()
    asked = parse_lookup(question)
    if asked is None:
        return None
    try:
        return _answer(Path(root), question, settings, asked, started)
    except IndexStoreError:  # no index, or one that cannot be read: the model path says what to do about it
        return None


def _answer(root: Path, question: str, settings: Settings, asked: Lookup, started: float) -> AskResult | None:
    from .ask import AskResult  # here, not at the top: ask imports this module
    from ..index.store import IndexStore  # LanceDB loads only for a question that is a lookup

    store = IndexStore.open(settings.index_path(root))
    texts = _FileTexts(root)
    definitions, unparsed = definition_spans(store, texts, asked.name)
    if not definitions and asked.intent in ("definition", "callees"):
        return None
    sites = _sites(store, texts, asked, definitions)
    if not sites.shown and (sites.more or not definitions):  # nothing to show, or an index too stale to trust
        return None
    answer = render_answer(asked, definitions, sites, unparsed)
    shown = _shown(definitions, sites)
    citations = check_citations(answer, shown)
    references = [{"path": d.path, "start": d.start, "end": d.end, "symbol": d.symbol}
                  for d in definitions[:MAX_DEFINITIONS]]
    coverage = _coverage(store, asked, shown, started)
    return AskResult(question, answer, citations, coverage, references)


class _FileTexts:
    """Files as they are now, each read once (None: gone, or not readable by the index's rules)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._texts: dict[str, str | None] = {}
        self._lines: dict[str, list[str]] = {}

    def text(self, path: str) -> str | None:
        if path not in self._texts:
            from ..repo.walk import read_text

            text = read_text(self.root, path)
            self._texts[path] = None if text is None else text.replace("\r\n", "\n")
        return self._texts[path]

    def line(self, path: str, line: int) -> str | None:
        if path not in self._lines:
            text = self.text(path)
            self._lines[path] = [] if text is None else text.split("\n")
        lines = self._lines[path]
        return lines[line - 1] if 1 <= line <= len(lines) else None


def definition_spans(store: IndexStore, texts: _FileTexts, name: str) -> tuple[list[Span], int]:
    """Where ``name`` is defined, and how many more definitions the index has in files not parsed (over
    MAX_DEFINITION_FILES). The index says in which files; each file's definitions, parsed as the file is now, give
    the line ranges (so lines that moved since the last index update are still right). A definition the grammar's
    chunks do not cover, like a constant, is the line the index gives, if that line still holds it."""
    from ..retrieve.symbols import find_symbols

    hits = [h for h in find_symbols(store, name, role="definition", limit=1_000_000)
            if _names(f"{h.scope}.{h.name}" if h.scope else h.name, name)]
    paths = sorted(dict.fromkeys(h.path for h in hits), key=lambda path: (_TEST_PATH.search(path) is not None, path))
    unparsed = sum(1 for h in hits if h.path in set(paths[MAX_DEFINITION_FILES:]))
    spans: list[Span] = []
    for path in paths[:MAX_DEFINITION_FILES]:
        parsed = [d for d in _parsed_definitions(path, texts) if _names(d.symbol, name)]
        spans += parsed
        for hit in (h for h in hits if h.path == path):
            inside = any(d.start <= hit.line <= d.end for d in parsed)
            if not inside and _holds(texts.line(path, hit.line), hit.name):
                qualified = f"{hit.scope}.{hit.name}" if hit.scope else hit.name
                spans.append(Span(path, hit.line, hit.line, qualified, hit.kind, _one_line(texts.line(path, hit.line))))
    return sorted(dict.fromkeys(spans), key=_prominence), unparsed


def _prominence(span: Span) -> tuple[bool, int, str, int]:
    """Which of several definitions of a name to list first: outside tests, then the least nested (the class
    ``Model`` before a ``Model`` declared inside a test method)."""
    return (_TEST_PATH.search(span.path) is not None, span.symbol.count("."), span.path, span.start)


def _names(qualname: str, asked: str) -> bool:
    """Whether a definition's qualified name is the one asked for: its own name, or for a qualified question
    ("Queue.requeue") the same last parts."""
    if "." in asked:
        return qualname == asked or qualname.endswith("." + asked)
    return qualname.rsplit(".", 1)[-1] == asked


def _parsed_definitions(path: str, texts: _FileTexts) -> list[Span]:
    """Every definition in the file as it is now, nested ones included (the grammar the index used)."""
    from ..index.definitions import extract_definitions
    from ..index.languages import language_for, ts_parser

    text = texts.text(path)
    spec = None if text is None else language_for(path, text)
    if text is None or spec is None:
        return []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    source = text.encode("utf-8", "replace")
    try:
        top = extract_definitions(spec, ts_parser(spec).parse(source), source, lines)
    except (ValueError, RuntimeError, UnicodeError):  # a file the grammar cannot handle (the index windows it)
        return []
    found: list[Span] = []
    pending = list(top)
    while pending:
        definition = pending.pop(0)
        pending[:0] = definition.children
        found.append(Span(path, definition.start_row + 1, definition.end_row + 1, definition.qualname,
                          definition.kind, _signature_line(definition.signature, definition.name)))
    return found


def _signature_line(signature: str, name: str) -> str:
    """The signature from its line that names the definition (decorators left out), on one line."""
    lines = [line.strip() for line in signature.splitlines() if line.strip()]
    first = next((index for index, line in enumerate(lines) if name in line), 0)
    joined = re.sub(r"\(\s+", "(", " ".join(lines[first:]))
    return _one_line(re.sub(r",?\s+\)", ")", joined))


def _one_line(line: str | None) -> str:
    line = (line or "").strip()
    return line if len(line) <= MAX_SIGNATURE_CHARS else line[:MAX_SIGNATURE_CHARS - 1] + "…"


def _holds(line: str | None, name: str) -> bool:
    """Whether the line (as the file has it now) still holds the name as a word."""
    return line is not None and re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", line) is not None


def _sites(store: IndexStore, texts: _FileTexts, asked: Lookup, definitions: list[Span]) -> Sites:
    """The call sites or uses the question asks about, in file and line order (tests last), matched by the name's
    last part as the symbols table records references: up to MAX_SITES of them in up to MAX_SITE_FILES files are
    shown, each checked against its file as it is now (a stale row is dropped); the rest are counted."""
    from ..retrieve.symbols import find_symbols

    if asked.intent == "callees":
        rows = _calls_inside(store, {d.symbol for d in definitions})
    else:
        rows = [Site(h.path, h.line, h.scope, h.name)
                for h in find_symbols(store, asked.name, role="reference", limit=1_000_000)
                if asked.intent != "callers" or h.kind == "call"]
    rows = sorted(dict.fromkeys(rows), key=lambda s: (_TEST_PATH.search(s.path) is not None, s.path, s.line, s.name))
    shown: list[Site] = []
    shown_files: set[str] = set()
    checked: set[Site] = set()
    for site in rows:
        if len(shown) == MAX_SITES or len(checked) == MAX_CHECKS:
            break
        if site.path not in shown_files and len(shown_files) == MAX_SITE_FILES:
            continue
        checked.add(site)
        if _holds(texts.line(site.path, site.line), site.name):
            shown.append(site)
            shown_files.add(site.path)
    rest = [s for s in rows if s not in checked]
    rest_files = {s.path for s in rest}
    return Sites(shown, len(rest), len(rest_files), len(rest_files | shown_files))


def _calls_inside(store: IndexStore, owners: set[str]) -> list[Site]:
    """Calls made directly inside the given definitions (by qualified name)."""
    from ..index.schema import sql_quote

    if not owners:
        return []
    scopes = ", ".join(sql_quote(owner) for owner in sorted(owners))
    rows = store.table("symbols").search().where(
        f"role = 'reference' AND kind = 'call' AND scope IN ({scopes})").limit(None).to_list()
    return [Site(r["path"], r["line"], r["scope"], r["name"]) for r in rows]


# --- the answer ------------------------------------------------------------------------------------------------

def render_answer(asked: Lookup, definitions: list[Span], sites: Sites, unparsed: int = 0) -> str:
    """Short markdown: the definitions, then the sites grouped by file (each capped, the rest counted)."""
    words = phrases.MESSAGES[asked.language]
    name = _code(asked.name)
    parts = [_definitions_text(asked.language, name, definitions, unparsed)]
    if asked.intent == "callees":
        owner = _code(definitions[0].symbol) if len({d.symbol for d in definitions}) == 1 else name
        parts.append(_sites_text(words, sites, words["callees"].format(owner=owner), by_callee=True)
                     if sites.total else words["no_callees"].format(owner=owner))
    else:
        heading = "callers" if asked.intent == "callers" else "usages"
        counted = words["sites"].format(places=_plural(words, "place", sites.total),
                                        files=_plural(words, "file", sites.files))
        parts.append(_sites_text(words, sites, words[heading].format(sites=counted), by_callee=False)
                     if sites.total else words[f"no_{heading}"].format(name=name))
    return "\n\n".join(parts) + "\n"


def _definitions_text(language: str, name: str, definitions: list[Span], unparsed: int) -> str:
    words = phrases.MESSAGES[language]
    if not definitions:
        return words["no_definition"].format(name=name)
    total = len(definitions) + unparsed
    heading = (words["definitions"].format(name=name) if total == 1
               else words["definitions_many"].format(name=name, count=total))
    lines = [heading]
    for d in definitions[:MAX_DEFINITIONS]:
        signature = f": {_code(d.signature)}" if d.signature else ""
        kind = phrases.KIND_NAMES.get(language, {}).get(d.kind, d.kind)
        lines.append(f"- {d.path}:{d.start}-{d.end} ({kind} {_code(d.symbol)}){signature}")
    listed = min(len(definitions), MAX_DEFINITIONS)
    if total > listed:
        lines.append("- " + _plural(words, "more_definition", total - listed))
    return "\n".join(lines)


def _sites_text(words: dict[str, str], sites: Sites, heading: str, by_callee: bool) -> str:
    """One line per file: the lines cited, labelled with the definition they are in (for callees: the name called);
    then how many more there are, in how many more files."""
    lines = [heading]
    for path in dict.fromkeys(s.path for s in sites.shown):
        groups: dict[str, list[int]] = {}
        for site in (s for s in sites.shown if s.path == path):
            groups.setdefault(site.name if by_callee else site.scope, []).append(site.line)
        entries = [f"{_code(label) if label else words['module_level']} "
                   f"({', '.join(f'{path}:{line}' for line in found)})" for label, found in groups.items()]
        lines.append(f"- `{path}`: " + ", ".join(entries))
    if sites.more:
        lines.append("- " + words["more"].format(places=_plural(words, "place", sites.more),
                                                  files=_plural(words, "file", sites.more_files)))
    return "\n".join(lines)


def _plural(words: dict[str, str], noun: str, count: int) -> str:
    return words[noun] if count == 1 else words[noun + "s"].format(count=count)


def _code(text: str) -> str:
    """Inline markdown code, also for text holding a backtick."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _shown(definitions: list[Span], sites: Sites) -> ShownLines:
    """The lines the answer cites, recorded as the other modes record what the model was shown: every citation in
    the answer must fall inside them."""
    shown = ShownLines()
    for definition in definitions[:MAX_DEFINITIONS]:
        shown.add(definition.path, definition.start, definition.end)
    for site in sites.shown:
        shown.add(site.path, site.line, site.line)
    return shown


def _coverage(store: IndexStore, asked: Lookup, shown: ShownLines, started: float) -> dict[str, Any]:
    """The keys of ask's coverage (so `ask --json` readers find them all), for an answer no model wrote: the
    whole index was searched, so only the files the index left out are left out."""
    elapsed = round(time.monotonic() - started, 3)
    return {
        "mode": "lookup",
        "files_in_context": 0,
        "files_appended": 0,
        "files_retrieved": len(shown.paths),
        "files_left_out": sum(store.skip_counts().values()),
        "context_tokens": 0,
        "repo_tokens": 0,
        "cache": "none",
        "kv_unit": "none",
        "restored_tokens": 0,
        "prefilled_tokens": 0,
        "pages": 0,
        "pages_restored": 0,
        "pages_saved": 0,
        "question_tokens": 0,
        "answer_tokens": 0,
        "stopped": "end",
        "restore_s": 0.0,
        "prefill_s": 0.0,
        "link_tokens": 0,
        "link_s": 0.0,
        "links_restored": 0,
        "ttft_s": elapsed,
        "model_ttft_s": elapsed,  # no model ran: the whole answer was ready at once
        "total_s": elapsed,
        "notices": [],
        "plan": f"lookup: {asked.intent} of {asked.name}, answered from the index",
        "sources_tokens": 0,
        "lookup": asdict(asked),
    }
