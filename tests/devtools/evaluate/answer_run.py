"""The answer benchmark's runner: real `ask` end to end over evaluation cases, scored as a user would read it.

Each case's source is prepared and doc-stripped as for the retrieval evaluation (sources.py, copies.py), indexed
with repochat, and asked once per model and effort with one engine per model. Beside every answer: the search top-1
control (repochat.retrieve.search over the same index, no model). With ``max_repo_tokens`` each case gets its own small
repository (small_copy): its own file (or gold files) plus nearby files up to about that many tokens, so the whole
repository fits the context and whole-repository mode can be compared with retrieval on a small machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from repochat.config import Settings, load_settings
from repochat.errors import RepochatError
from repochat.index.indexer import embed_pending, update_index
from repochat.index.store import IndexStore
from repochat.repo.walk import read_text, walk_repository
from repochat.retrieve.files import rank_files
from repochat.retrieve.search import search
from repochat.tokens import count_tokens, count_tokens_batch
from .answers import score_localization, score_needle, short_name
from .cases import FILE_LOCALIZATION, NEEDLE, Case, EvalError
from .copies import COMPLETE
from .metrics import overlaps
from .runner import EvalOptions, index_source, source_groups, stripped_copy
from .sources import source_key, source_label

NEEDLE_QUESTION = "Which function or method does the following: '{query}'? Name it and its file."
LOCALIZATION_QUESTION = "Which files would need to change to resolve this issue?\n\n{query}"
SMALL_COPY_VERSION = 3  # bump when the file selection of small_copy changes
LINE_OVERHEAD_TOKENS = 2  # the "123|" prefix every line gets in the context (retrieve/excerpts.py counts the same)
Log = Callable[[str], None]


def question_for(case: Case) -> str:
    template = LOCALIZATION_QUESTION if case.suite == FILE_LOCALIZATION else NEEDLE_QUESTION
    return template.format(query=case.query.strip())


def needle_name(case: Case) -> str:
    return case.short_name or short_name(case.symbol)


def pick_cases(cases: list[Case], suites: Iterable[str] = (), packages: Iterable[str] = (), sample: int = 0,
               seed: int = 0, limit: int = 0, ids: Iterable[str] = ()) -> list[Case]:
    """Cases of the given suites, packages and ids (all when empty); then a seeded random sample of ``sample`` of
    them (kept in file order), then the first ``limit``."""
    suites, packages, ids = set(suites), {p.lower() for p in packages}, set(ids)
    chosen = [c for c in cases if (not suites or c.suite in suites) and (not ids or c.id in ids)
              and (not packages or source_label(c.source).lower() in packages)]
    if sample and sample < len(chosen):
        keep = set(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [c for i, c in enumerate(chosen) if i in keep]
    return chosen[:limit] if limit else chosen


@dataclass(frozen=True)
class AnswerOptions:
    work: Path
    efforts: tuple[str, ...] = ("auto",)
    models: tuple[str, ...] = ("default",)
    max_repo_tokens: int = 0  # 0: the whole package
    max_answer_tokens: int = 0  # 0: the settings' default
    embed: bool = True
    fresh: bool = False
    threads: int = 0
    settings: tuple[tuple[str, str], ...] = ()  # (name, value) of settings to ask with, as in repochat.toml
    index_code: str = ""  # reuse the indexes built by this git revision's indexing code (copies.index_code_fingerprint)


@dataclass
class AnswerRow:
    id: str
    suite: str
    package: str
    model: str
    effort: str
    mode: str = ""
    cache: str = ""
    ttft_s: float = 0.0  # the answer's first words (a pick's come from the index, before the prefill)
    model_ttft_s: float = 0.0  # the model's first token
    total_s: float = 0.0
    right: bool = False  # needle: named as code; localization: a gold file pointed at first
    first: bool = False  # needle: the first name written as code is the function's; localization: as right
    named_file: bool = False  # needle: its file named; localization: a gold file among the first three
    cited: bool = False  # needle: citation/reference overlapping; localization: a gold file cited or referenced
    control: bool = False  # search top-1 alone is right
    control_top: str = ""
    citations: int = 0
    valid_citations: int = 0
    references: int = 0
    repo_files: int = 0
    repo_tokens: int = 0
    context_tokens: int = 0
    pointed: list[str] = field(default_factory=list)  # files the answer points at, in order
    cited_spans: list[str] = field(default_factory=list)  # the model's citations, "path:start-end" ("(invalid)")
    referenced_spans: list[str] = field(default_factory=list)  # repochat's "defined at" references
    line_offset: int = 0  # small copies: lines cut above the case's function (its lines are shifted by this)
    answer: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Prepared:
    """A case ready to ask: the tree to ask about, its settings (index), the case with lines as in that tree."""
    case: Case
    tree: Path
    settings: Settings
    files: list[str]
    line_offset: int = 0


def _settings(tree: Path, index: Path, options: AnswerOptions, work: Path) -> Settings:
    overrides: dict[str, Any] = {"index_dir": str(index), "cache_dir": str(work / "kv-cache")}
    if options.max_answer_tokens:
        overrides["max_answer_tokens"] = options.max_answer_tokens
    if options.threads:
        overrides["threads"] = options.threads
    overrides.update(options.settings)
    return load_settings(tree, overrides)


def _walked_files(tree: Path, settings: Settings) -> list[str]:
    return [f.path for f in walk_repository(tree, settings).files]


def prepare_cases(cases: list[Case], all_cases: list[Case], options: AnswerOptions, log: Log,
                  skipped: dict[str, str] | None = None) -> list[Prepared]:
    """Every case's repository ready and indexed; the strip set of a source is that of all its cases (``all_cases``),
    so the copy is the one the retrieval evaluation indexes. A source that cannot be prepared (an old sdist whose
    metadata no longer builds) is logged and its cases go to ``skipped`` (id -> why) instead of ending the run."""
    prepared: list[Prepared] = []
    for group in source_groups(cases):
        try:
            prepared += _prepare_group(group, all_cases, options, log)
        except EvalError as exc:
            log(f"{source_label(group[0].source)}: skipped {len(group)} case(s): {exc}")
            if skipped is not None:
                skipped.update({case.id: str(exc) for case in group})
    return prepared


def _prepare_group(group: list[Case], all_cases: list[Case], options: AnswerOptions, log: Log) -> list[Prepared]:
    """The cases of one source ready to ask: the whole doc-stripped package indexed, or one small copy each."""
    siblings = [c for c in all_cases if source_key(c.source) == source_key(group[0].source)]
    if not options.max_repo_tokens:
        indexed = index_source(siblings, EvalOptions(work=options.work, embed=options.embed, fresh=options.fresh,
                                                     index_code=options.index_code), None, log)
        settings = _settings(indexed.tree, Path(indexed.settings.index_path(indexed.tree)), options, options.work)
        files = _walked_files(indexed.tree, settings)
        return [Prepared(c, indexed.tree, settings, files) for c in group]
    label, _root, tree, folder = stripped_copy(siblings, options.work, options.fresh, log, options.index_code)
    prepared: list[Prepared] = []
    for case in group:
        small, offset = small_copy(tree, case, options.max_repo_tokens, folder / "small", options.fresh)
        settings = _settings(small, small.parent / "index", options, options.work)
        log(f"{label}: indexing the small copy for {case.id}")
        update_index(small, settings)
        if options.embed:
            embed_pending(IndexStore.open(settings.index_path(small)), settings)
        shifted = dataclasses.replace(case, start_line=case.start_line - offset,
                                      end_line=case.end_line - offset) if offset else case
        prepared.append(Prepared(shifted, small, settings, _walked_files(small, settings), offset))
    return prepared


def rendered_tokens(text: str) -> int:
    """Estimated tokens of a file as the context shows it: its text (tiktoken) plus each line's number prefix."""
    return count_tokens(text) + LINE_OVERHEAD_TOKENS * text.count("\n")


def small_copy(tree: Path, case: Case, max_tokens: int, target: Path, fresh: bool = False) -> tuple[Path, int]:
    """A repository of about ``max_tokens`` tokens (as rendered in the context: rendered_tokens) cut from ``tree``
    for one case: the case's own file (needle) or gold files (localization), then the other files nearest to them
    (most leading folders in common, then by path) while they fit. An own file larger than the budget is cut to a
    window of whole lines around the function (needle: line_window) or to its first lines (localization). Returns
    the copy's tree and the needle's line offset (original line L is line L - offset in the copy; 0 uncut)."""
    own = [case.path] if case.suite == NEEDLE else list(case.gold_files)
    digest = hashlib.sha256(json.dumps([str(tree), own, case.start_line, case.end_line, max_tokens,
                                        SMALL_COPY_VERSION]).encode()).hexdigest()[:12]
    folder = target / digest
    small = folder / "tree"
    if not fresh and (folder / COMPLETE).is_file():
        return small, int((folder / COMPLETE).read_text(encoding="utf-8") or 0)
    shutil.rmtree(folder, ignore_errors=True)
    settings = load_settings(tree)
    candidates = _walked_files(tree, settings)
    texts = {path: read_text(tree, path) for path in candidates}
    texts = {path: text for path, text in texts.items() if text is not None}
    present = [p for p in own if p in texts]
    if not present:
        raise EvalError(f"{case.id}: none of {', '.join(own)} is a readable file of {tree}")
    budget = max_tokens
    offset = 0
    chosen: dict[str, str] = {}
    share = max_tokens // len(present)
    for path in present:
        text = texts[path]
        tokens = rendered_tokens(text)
        if tokens > share:
            if case.suite == NEEDLE:
                text, offset = line_window(text, case.start_line, case.end_line, share, path.endswith(".py"))
            else:
                text, _ = line_window(text, 1, 1, share)
            tokens = rendered_tokens(text)
        chosen[path] = text
        budget -= tokens
    others = sorted((p for p in texts if p not in chosen), key=lambda p: (-_common_folders(p, present), p))
    counts = [n + LINE_OVERHEAD_TOKENS * texts[p].count("\n")
              for p, n in zip(others, count_tokens_batch([texts[p] for p in others]))]
    for path, tokens in zip(others, counts):
        if tokens <= budget:
            chosen[path] = texts[path]
            budget -= tokens
    for path, text in chosen.items():
        out = small / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    (folder / COMPLETE).write_text(str(offset), encoding="utf-8")
    return small, offset


def line_window(text: str, start: int, end: int, max_tokens: int, python: bool = False) -> tuple[str, int]:
    """Whole lines around ``start``-``end`` (1-based) within about ``max_tokens``, grown one line above and one
    below in turn, then shrunk to definition boundaries (so the cut never starts inside a string or a body of
    another definition); the lines of start-end are always kept. A Python method keeps its class: the enclosing
    ``class`` line is put first. Returns the text and the line offset: original line L is line L - offset."""
    lines = text.splitlines(keepends=True)
    start, end = max(1, min(start, len(lines))), max(1, min(end, len(lines)))
    costs = [n + LINE_OVERHEAD_TOKENS for n in count_tokens_batch(lines)]
    first, last = start - 1, end - 1
    used = sum(costs[first:last + 1])
    grew = True
    while grew:
        grew = False
        if first > 0 and used + costs[first - 1] <= max_tokens:
            first -= 1
            used += costs[first]
            grew = True
        if last < len(lines) - 1 and used + costs[last + 1] <= max_tokens:
            last += 1
            used += costs[last]
            grew = True
    indent = _indent(lines[start - 1])
    if first > 0:
        first = next((i for i in range(first, start - 1) if _boundary(lines[i], indent, python)), start - 1)
    if last < len(lines) - 1:
        after = next((i for i in range(last + 1, end - 1, -1) if _boundary(lines[i], indent, python)), None)
        last = after - 1 if after is not None and after > end - 1 else max(last, end - 1)
    header = []
    if python and indent and first > 0:
        owner = next((i for i in range(start - 2, -1, -1) if lines[i].strip() and _indent(lines[i]) < indent), None)
        if owner is not None and owner < first and lines[owner].lstrip().startswith("class "):
            header = [lines[owner]]
    return "".join(header + lines[first:last + 1]), first - len(header)


_DEF_STARTS = ("def ", "async def ", "class ", "@")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _boundary(line: str, indent: int, python: bool) -> bool:
    """Whether a definition at ``indent`` (or one enclosing it) starts at ``line``: Python ``def``/``class``/
    decorator lines; elsewhere any code line at that indentation or less that does not close or continue a block."""
    stripped = line.strip()
    if not stripped or _indent(line) > indent:
        return False
    if python:
        return stripped.startswith(_DEF_STARTS)
    return not stripped.startswith(("}", ")", "]", "*", "/", "#"))


def _common_folders(path: str, owns: list[str]) -> int:
    folders = path.split("/")[:-1]
    best = 0
    for own in owns:
        shared = 0
        for a, b in zip(folders, own.split("/")[:-1]):
            if a != b:
                break
            shared += 1
        best = max(best, shared)
    return best


def control_top1(prepared: Prepared) -> tuple[bool, str]:
    """Search alone over the same index, no model: is its first hit right? A file-localization case is ranked as
    `ask` ranks the files a "which files" answer leads with (repochat.retrieve.files.rank_files), a needle case by
    hybrid chunk search (repochat.retrieve.search)."""
    case = prepared.case
    store = IndexStore.open(prepared.settings.index_path(prepared.tree))
    if case.suite == FILE_LOCALIZATION:
        files = rank_files(store, case.query, k=1, embedding_model=prepared.settings.embedding_model)
        return (files[0].path in case.gold_files, files[0].path) if files else (False, "")
    hits = search(store, case.query, k=1, embedding_model=prepared.settings.embedding_model)
    if not hits:
        return False, ""
    hit = hits[0]
    top = f"{hit.location()} {hit.symbol}".strip()
    return overlaps((hit.path, hit.start_line, hit.end_line), case.path, case.start_line, case.end_line), top


def score_row(row: AnswerRow, prepared: Prepared, answer: str, citations: list[dict[str, Any]],
              references: list[dict[str, Any]]) -> None:
    case = prepared.case
    row.answer = answer
    row.citations = len(citations)
    row.valid_citations = sum(1 for c in citations if c.get("valid"))
    row.references = len(references)
    row.cited_spans = [f"{c['path']}:{c['start']}-{c['end']}" + ("" if c.get("valid") else " (invalid)")
                       for c in citations]
    row.referenced_spans = [f"{r['path']}:{r['start']}-{r['end']}" for r in references]
    if case.suite == FILE_LOCALIZATION:
        loc = score_localization(answer, case.gold_files, citations, references, prepared.files, case.query)
        row.right, row.named_file, row.cited, row.pointed = loc.first, loc.top3, loc.cited, loc.pointed[:10]
        row.first = loc.first
    else:
        needle = score_needle(answer, needle_name(case), case.path, case.start_line, case.end_line, citations,
                              references, prepared.files, case.query)
        row.right, row.first, row.named_file, row.cited = needle.right, needle.first, needle.named_file, needle.cited


def run_answers(cases: list[Case], all_cases: list[Case], options: AnswerOptions, log: Log,
                on_row: Callable[[AnswerRow], None] | None = None,
                skipped: dict[str, str] | None = None) -> list[AnswerRow]:
    """Ask every case once per model and effort; rows in the order asked. Cases whose source could not be
    prepared are left out and named in ``skipped``."""
    from repochat.answer.ask import ask  # the model stack is imported only when answers are really asked
    from repochat.engine.models import resolve_model
    from repochat.engine.session import Engine

    for case in cases:
        if case.suite == NEEDLE and not needle_name(case):
            raise EvalError(f"{case.id}: a needle case needs symbol or short_name to score an answer")
    prepared = prepare_cases(cases, all_cases, options, log, skipped)
    if not prepared:
        return []
    controls = {}
    for item in prepared:
        controls[item.case.id] = control_top1(item)
    rows: list[AnswerRow] = []
    for model in options.models:
        base = dataclasses.replace(prepared[0].settings, model=model)
        with Engine(resolve_model(base), base) as engine:
            for item in prepared:
                settings = dataclasses.replace(item.settings, model=model)
                for effort in options.efforts:
                    row = _ask_row(ask, engine, item, settings, model, effort, controls[item.case.id], log)
                    rows.append(row)
                    if on_row:
                        on_row(row)
    return rows


def _ask_row(ask: Callable[..., Any], engine: Any, item: Prepared, settings: Settings, model: str, effort: str,
             control: tuple[bool, str], log: Log) -> AnswerRow:
    case = item.case
    row = AnswerRow(id=case.id, suite=case.suite, package=source_label(case.source), model=model, effort=effort,
                    control=control[0], control_top=control[1], repo_files=len(item.files),
                    line_offset=item.line_offset)
    started = time.monotonic()
    try:
        result = ask(item.tree, question_for(case), settings, effort=effort, engine=engine)
    except RepochatError as exc:
        row.error = str(exc)
        row.total_s = round(time.monotonic() - started, 2)
        log(f"{case.id} [{model} {effort}]: error: {exc}")
        return row
    coverage = result.coverage
    row.mode, row.cache = str(coverage.get("mode", "")), str(coverage.get("cache", ""))
    row.ttft_s, row.total_s = float(coverage.get("ttft_s", 0.0)), float(coverage.get("total_s", 0.0))
    row.model_ttft_s = float(coverage.get("model_ttft_s", row.ttft_s))
    row.repo_tokens, row.context_tokens = int(coverage.get("repo_tokens", 0)), int(coverage.get("context_tokens", 0))
    score_row(row, item, result.answer, list(result.citations), list(result.references))
    log(f"{case.id} [{model} {effort} {row.mode}]: right={row.right} file={row.named_file} cited={row.cited} "
        f"control={row.control} ttft={row.ttft_s:.1f}s (model {row.model_ttft_s:.1f}s) total={row.total_s:.1f}s")
    return row


# ---- the report --------------------------------------------------------------------------------------------------

COLUMNS = {
    NEEDLE: ("right", "named file", "cited"),
    FILE_LOCALIZATION: ("first", "in top 3", "cited"),
}


def summary(rows: list[AnswerRow]) -> list[dict[str, Any]]:
    """One line per suite x model x effort: counts and medians."""
    groups: dict[tuple[str, str, str], list[AnswerRow]] = {}
    for row in rows:
        groups.setdefault((row.suite, row.model, row.effort), []).append(row)
    lines = []
    for (suite, model, effort), members in groups.items():
        modes: dict[str, int] = {}
        for row in members:
            mode = row.mode or "error"
            if row.mode == "whole" and row.cache in ("hit", "partial"):
                mode += " (cache " + row.cache + ")"  # a warm start: its ttft is not a cold one
            modes[mode] = modes.get(mode, 0) + 1
        answered = [r for r in members if not r.error]
        lines.append({
            "suite": suite, "model": model, "effort": effort, "n": len(members),
            "modes": ", ".join(f"{m} {n}" for m, n in sorted(modes.items())),
            "right": sum(r.right for r in members), "first": sum(r.first for r in members),
            "named_file": sum(r.named_file for r in members),
            "cited": sum(r.cited for r in members), "control": sum(r.control for r in members),
            "with_citation": sum(1 for r in members if r.citations),
            "citations": sum(r.citations for r in members), "valid_citations": sum(r.valid_citations for r in members),
            "errors": len(members) - len(answered),
            "median_ttft_s": round(statistics.median(r.ttft_s for r in answered), 1) if answered else 0.0,
            "median_model_ttft_s": round(statistics.median(r.model_ttft_s for r in answered), 1) if answered else 0.0,
            "median_total_s": round(statistics.median(r.total_s for r in answered), 1) if answered else 0.0,
        })
    return lines


def as_table(rows: list[AnswerRow]) -> str:
    out = []
    for suite in (NEEDLE, FILE_LOCALIZATION):
        lines = [line for line in summary(rows) if line["suite"] == suite]
        if not lines:
            continue
        right, named, cited = COLUMNS[suite]
        header = ["model", "effort", "n", "modes", right] + (["right first"] if suite == NEEDLE else []) + [
            named, cited, "search top-1", "cites (valid)", "median ttft s", "model ttft s", "median total s"]
        table = [header]
        for line in lines:
            n = line["n"]
            first = [_share(line["first"], n)] if suite == NEEDLE else []
            table.append([line["model"], line["effort"], str(n), line["modes"], _share(line["right"], n), *first,
                          _share(line["named_file"], n), _share(line["cited"], n), _share(line["control"], n),
                          f"{line['with_citation']}/{n} ({line['valid_citations']}/{line['citations']})",
                          f"{line['median_ttft_s']:.1f}", f"{line['median_model_ttft_s']:.1f}",
                          f"{line['median_total_s']:.1f}"])
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        out.append(f"{suite}:")
        out += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
        out.append("")
    out.append("needle: right = the function named as code (right first: it is the first name written as code);"
               " named file = its file named; cited = a valid citation"
               " or a reference overlapping it.")
    out.append("file-localization: first / in top 3 = a gold file first / among the first three files the answer"
               " points at; cited = a gold file cited or referenced.")
    out.append("search top-1 = search alone, first hit right (no model): the file ranking (`repochat search --files`)"
               " for file-localization, hybrid chunk search for needles; cites = answers with a citation"
               " (valid citations / all).")
    return "\n".join(out)


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} {part / whole:.2f}" if whole else "0/0"
