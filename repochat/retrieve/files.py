"""Which files a question is about: files ranked by the evidence for each, for localization questions ("which
files would need to change to resolve this issue?").

A file's evidence: the fused scores of its best chunks in the hybrid search, its chunks' full-text scores summed
(several matching chunks count more than one), its BM25 score as one document (repochat.retrieve.file_bm25), the
best chunk for the text's first line alone
(an issue's title) and the title's words in the file's path, the definitions it holds of names the text writes as
code (weighted by how few files define the same name), and whether the text names the file itself, by path (a stack
trace's frames, the deepest apart) or as a dotted module path. Vendored copies, tests, docs and stubs rank lower: a
question about what must change is about the project's own code. The evidence is combined linearly, with weights
fitted on real issues (tests/bench/fit_fusion.py --files).

    hits = rank_files(store, issue_text, k=5)   # [FileHit(path, score, start_line, end_line, symbol), ...]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from ..errors import ConfigError
from ..index.embedder import Embedder
from ..index.identifiers import split_identifier
from ..index.lance_api import Table
from ..index.store import IndexStore
from . import search as S
from .file_bm25 import file_bm25

# Per file: its best chunk's fused score, its second and third best (summed), log(1 + its chunks' summed scores) in
# the text and code full-text lists (each chunk's score relative to the list's best chunk, and the file's sum relative
# to the best file's), its BM25 score as one document (relative to the best file's), its best chunk's fused score for
# the title alone, the title's words in its path, the definitions of names the query writes as code, whether a path in
# the query names it (and whether it is the last one named), whether a dotted module path does, log(1 + its chunk
# count), and whether it is vendored or secondary (tests, docs, stubs).
FEATURES = ("best", "more", "text", "code", "bm25", "title", "title_path", "defines", "path", "last_path", "module",
            "size", "vendored", "secondary")
# Fitted by tests/bench/fit_fusion.py --files (coordinate ascent on MRR + Acc@5 / 2, one fit per left-out project,
# the fits averaged) on 135 dev-swelite cases from 11 projects (64 sdists). Leave one project out, Acc@5 went from
# 0.785 to 0.837 and MRR from 0.678 to 0.695 with the file's BM25 and the summed scores relative to the best file.
WEIGHTS = {"best": 0.27, "more": 0.25, "text": 3.0, "code": 0.09, "bm25": 3.9, "title": 1.0, "title_path": 3.9,
           "defines": 5.6, "path": 4.0, "last_path": 4.4, "module": 1.5, "size": 0.2, "vendored": -8.0,
           "secondary": -6.55}
PENALTIES = ("vendored", "secondary")  # features whose weights are below 0
# Third-party code copied into the repository: the copy is not where its own project's bugs get fixed.
VENDORED_PATHS = re.compile(r"(^|/)(vendor|vendored|_vendor|third_party|thirdparty|externals?|packages)/", re.I)
FILE_CANDIDATES = 200  # chunks per full-text list: a file's score sums its chunks, so it needs more than the top 50
MORE_CHUNKS = 2  # chunks after the best that add to a file's score
# The file a folder stands for when a dotted module path names the folder (Python packages, JS/TS, Rust).
PACKAGE_FILE_STEMS = ("__init__", "index", "mod", "lib")
_DEFINITIONS_CACHE: dict[str, Any] = {}

# A path written in the text: at least one folder, or a file name with an extension (`x/y.py`, `y.py`, `a\b.c`).
_PATH = re.compile(r"(?<![\w./\\-])(?:[A-Za-z]:)?[/\\]?(?:[\w.-]+[/\\])+[\w.-]+"
                   r"|(?<![\w./\\-])[\w-]+\.[A-Za-z]\w{0,5}(?![\w(])")
# A dotted name of three or more parts or two parts the second of which is lowercase (`pkg.module`, a.b.c.D):
# possibly a module path, possibly followed by a definition's name.
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
# Text that is code in an issue or question: fenced blocks, inline literals, indented and interpreter lines.
_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE = re.compile(r"`[^`\n]+`")
_CODE_LINE = re.compile(r"^(?: {4}|\t|>>> |\.\.\. |In \[\d+\]: ).*$", re.M)
_IDENTIFIER = re.compile(r"(?<![\w])[A-Za-z_]\w*")
# Outside code, a word counts as a name only when written like one: with an underscore, with a capital inside, or
# called (`name(`) or reached (`.name`).
_NAME_LIKE = re.compile(r"(?<![\w])(?:\w*_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*)|(?<=\.)[A-Za-z_]\w*"
                        r"|(?<![\w.])[A-Za-z_]\w*(?=\()")
MAX_NAMES = 200


@dataclass(frozen=True)
class FileHit:
    """A file and why it ranks where it does: its score and the span of its best chunk (the place to read first;
    0-0 when only the file itself was named)."""

    path: str
    score: float
    start_line: int
    end_line: int
    symbol: str = ""

    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}" if self.start_line else self.path


def rank_files(store: IndexStore, query: str, k: int = 10, mode: str = "hybrid", path_glob: str | None = None,
               language: str | None = None, embedding_model: str = "minilm",
               embedder: Embedder | None = None, weights: dict[str, float] | None = None) -> list[FileHit]:
    """The k files most likely to hold what ``query`` is about (an issue text, a stack trace, a question), best
    first. ``mode`` as for search(): hybrid uses vectors when the index has them, fts never does. ``weights`` (of
    FEATURES) replace WEIGHTS, for fitting and comparing."""
    if mode not in ("hybrid", "fts"):
        raise ConfigError(f"files are ranked in hybrid or fts mode, not {mode!r}")
    if not query.strip():
        return []
    model = None
    if mode == "hybrid" and store.has_vectors():
        model = embedder or S.cached_embedder(embedding_model)
    paths, features, best = file_features(store, query, S._filter(path_glob, language), model)
    scores = features @ weight_vector(weights)
    order = np.argsort(-scores, kind="stable")[:k]
    return [FileHit(paths[i], round(float(scores[i]), 6), *best.get(paths[i], (0, 0, ""))) for i in order]


def best_chunks(store: IndexStore, hits: list[FileHit]) -> list[S.SearchHit]:
    """Each file's best chunk as a search hit, in the files' order: the place to read it first (its first chunk
    when only its path was named)."""
    directory = store.chunk_directory()
    rows = []
    for hit in hits:
        chunks = directory.by_path.get(hit.path, [])
        row = directory.chunk_at(hit.path, hit.start_line) if hit.start_line else (chunks[0] if chunks else None)
        if row is not None:
            rows.append((row, hit.score))
    full = S._full_rows(store, [row for row, _ in rows])
    return [S._hit(full[S._span(row)], score) for row, score in rows if S._span(row) in full]


def weight_vector(weights: dict[str, float] | None = None) -> np.ndarray:
    chosen = {**WEIGHTS, **(weights or {})}
    return np.array([chosen[name] for name in FEATURES])


def file_features(store: IndexStore, query: str, where: str | None = None, embedder: Embedder | None = None
                  ) -> tuple[list[str], np.ndarray, dict[str, tuple[int, int, str]]]:
    """The candidate files, a row of FEATURES for each, and each file's best chunk (start, end, symbol)."""
    query = query[:S.MAX_QUERY_CHARS]
    legs = S.ranked_lists(store, query, where, embedder=embedder, candidates=FILE_CANDIDATES)
    fused = S.fuse(legs)
    known = _known_paths(store, where)
    evidence: dict[str, dict[str, float]] = {}
    best: dict[str, tuple[int, int, str]] = {}
    chunk_scores: dict[str, list[float]] = {}
    for row, score in fused:
        chunk_scores.setdefault(row["path"], []).append(score)
        best.setdefault(row["path"], (row["start_line"], row["end_line"], _symbol_at(store, row)))
    for path, scores in chunk_scores.items():
        file = evidence.setdefault(path, {})
        file["best"] = scores[0]
        file["more"] = sum(scores[1:1 + MORE_CHUNKS])
    for leg in ("text", "code"):
        for path, share in _summed_scores(legs.get(leg) or []).items():
            evidence.setdefault(path, {})[leg] = share
    for path, score in file_bm25(store, query, known if where else None).items():
        evidence.setdefault(path, {})["bm25"] = score
    for path, score in _title_scores(store, query, where).items():
        evidence.setdefault(path, {})["title"] = score
    for path, score in path_word_scores(title_of(query), known).items():
        evidence.setdefault(path, {})["title_path"] = score
    for path, weight in defining_files(store, code_names(query), known).items():
        evidence.setdefault(path, {})["defines"] = weight
    named = files_named(path_mentions(query), known)
    for path in named:
        evidence.setdefault(path, {})["path"] = 1.0
    if named:  # the deepest frame of a stack trace, where the error surfaced
        evidence[named[-1]]["last_path"] = 1.0
    for path in modules_named(dotted_names(query), known):
        evidence.setdefault(path, {})["module"] = 1.0
    by_path = store.chunk_directory().by_path
    for path, file in evidence.items():
        # Larger files hold more of the code, and more of what gets fixed.
        file["size"] = math.log1p(len(by_path.get(path, ())))
        file["vendored"] = 1.0 if VENDORED_PATHS.search(path) else 0.0
        file["secondary"] = 1.0 if S.SECONDARY_PATHS.search(path) else 0.0
    paths = list(evidence)
    matrix = np.array([[evidence[path].get(name, 0.0) for name in FEATURES] for path in paths]).reshape(
        len(paths), len(FEATURES))
    return paths, matrix, best


def title_of(query: str) -> str:
    """The first line of a text of several lines (an issue's title says in a few words what its body says in
    many); '' for a text of one line."""
    title, _, body = query.strip().partition("\n")
    return title.strip() if body.strip() else ""


def _title_scores(store: IndexStore, query: str, where: str | None) -> dict[str, float]:
    """Each file's best fused chunk score for the query's title alone."""
    title = title_of(query)
    if not title:
        return {}
    scores: dict[str, float] = {}
    for row, score in S.fuse(S.ranked_lists(store, title, where)):
        scores.setdefault(row["path"], score)
    return scores


def path_word_scores(text: str, known: set[str]) -> dict[str, float]:
    """Files whose path says what ``text`` says ("LaTeX printing of ..." -> printing/latex.py): the words of
    ``text`` found among the words of a file's name (whole weight) or of its folders' names (half), each weighted by
    how few files have it in their path (idf), summed and divided by the log of the number of files."""
    words = _words(text)
    if not words or len(known) < 2:
        return {}
    named = {path: _path_words(path) for path in known}
    counts: dict[str, int] = {}
    for own, folders in named.values():
        for word in (own | folders) & words:
            counts[word] = counts.get(word, 0) + 1
    scale = math.log(len(known))
    scores: dict[str, float] = {}
    for path, (own, folders) in named.items():
        score = sum(math.log(len(known) / counts[w]) for w in own & words) + \
            0.5 * sum(math.log(len(known) / counts[w]) for w in (folders - own) & words)
        if score > 0:
            scores[path] = score / scale
    return scores


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _words(text: str) -> set[str]:
    """Lowercase words and identifier parts, a plural 's' dropped (`modules` finds expand_modules.py's module)."""
    found = set()
    for word in _WORD.findall(text):
        for part in (word, *split_identifier(word)):
            part = part.lower()
            found.add(part[:-1] if len(part) > 3 and part.endswith("s") and not part.endswith("ss") else part)
    return {word for word in found if len(word) > 1}


@lru_cache(maxsize=100_000)
def _path_words(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """The words of a file's name without its extension, and those of its folders."""
    folders, _, name = path.rpartition("/")
    return frozenset(_words(name.split(".", 1)[0])), frozenset(_words(folders.replace("/", " ")))


def _symbol_at(store: IndexStore, row: dict[str, Any]) -> str:
    """The symbol of a chunk the ranked lists name by its place only."""
    for chunk in store.chunk_directory().by_path.get(row["path"], ()):
        if chunk["start_line"] == row["start_line"]:
            return str(chunk["symbol"])
    return ""


def _summed_scores(leg: list[dict[str, Any]]) -> dict[str, float]:
    """Each file's chunk scores in one full-text list, summed (each relative to the list's best chunk), log(1 + sum)
    relative to the best file's: a file with several matching chunks is about the query more than one whose single
    chunk matches a little better. Relative, because a long issue's words match many chunks and a short one's few."""
    if not leg or not leg[0]["_score"]:
        return {}
    top = leg[0]["_score"]
    sums: dict[str, float] = {}
    for row in leg:
        sums[row["path"]] = sums.get(row["path"], 0.0) + row["_score"] / top
    best = math.log1p(max(sums.values()))
    return {path: math.log1p(total) / best for path, total in sums.items()}


def _known_paths(store: IndexStore, where: str | None) -> set[str]:
    """The indexed files (those of the filter when there is one), that named paths and modules resolve to."""
    directory = store.chunk_directory()
    if where is None:
        return set(directory.by_path)
    rows = store.table("chunks").search().where(where).select(["path"]).limit(None).to_arrow()
    return set(rows.column("path").to_pylist())


def code_regions(query: str) -> str:
    """The parts of the text written as code: fenced blocks, inline literals, indented and interpreter lines."""
    parts = _FENCED.findall(query) + _INLINE.findall(_FENCED.sub(" ", query)) + _CODE_LINE.findall(query)
    return "\n".join(parts)


def code_names(query: str) -> list[str]:
    """Names the query writes as code: every identifier in its code, and outside it the words written like
    names (snake_case, camelCase, called, after a dot); in order of first mention."""
    names = _IDENTIFIER.findall(code_regions(query)) + _NAME_LIKE.findall(query)
    return list(dict.fromkeys(name for name in names if len(name) > 1))[:MAX_NAMES]


def defining_files(store: IndexStore, names: list[str], known: set[str]) -> dict[str, float]:
    """Files that define names of ``names``, each name counting 1 / the number of files that define it (a name
    defined in one file points at it; ``__init__`` points nowhere), summed over names and squashed to 0..1."""
    definitions = _definitions(store)
    weights: dict[str, float] = {}
    for name in names:
        files = [path for path in definitions.get(name, ()) if path in known]
        for path in files:
            weights[path] = weights.get(path, 0.0) + 1.0 / len(files)
    return {path: 1.0 - math.exp(-weight) for path, weight in weights.items()}


def _definitions(store: IndexStore) -> dict[str, set[str]]:
    """Defined name -> the files defining it, cached per symbols table version."""
    return store.cached_per_version(_DEFINITIONS_CACHE, "symbols", _load_definitions)


def _load_definitions(table: Table) -> dict[str, set[str]]:
    data = table.search().where("role = 'definition'").select(["name", "path"]).limit(None).to_arrow()
    found: dict[str, set[str]] = {}
    for name, path in zip(data.column("name").to_pylist(), data.column("path").to_pylist()):
        found.setdefault(name, set()).add(path)
    return found


def path_mentions(query: str) -> list[str]:
    """Paths the query writes (a stack trace's frames, a file named in prose), with '/' separators, in order (a
    path written twice is listed twice)."""
    return [m.replace("\\", "/").strip("./") for m in _PATH.findall(query)]


def dotted_names(query: str) -> list[str]:
    """Dotted names the query writes (`pkg.module.Class.method`), in order of first mention."""
    return list(dict.fromkeys(_DOTTED.findall(query)))


def files_named(mentions: Iterable[str], known: set[str]) -> list[str]:
    """Indexed files that written paths name, in the order of their last mention: the longest match of the path's
    trailing parts (a stack trace shows an installed copy, /usr/lib/.../site-packages/pkg/mod.py; the index has
    src/pkg/mod.py), when it is one file or a few."""
    by_name = _by_file_name(known)
    found: dict[str, None] = {}
    for mention in mentions:
        parts = [p for p in mention.split("/") if p]
        if not parts:
            continue
        candidates = by_name.get(parts[-1], [])
        matched = _longest_suffix_matches(parts, candidates)
        if 0 < len(matched) <= 3:
            for path in matched:
                found.pop(path, None)
                found[path] = None
    return list(found)


def modules_named(names: Iterable[str], known: set[str]) -> set[str]:
    """Indexed files that a dotted name names as a module (`a.b.c` -> .../a/b/c.py or .../a/b/c/__init__.py),
    trying ever shorter prefixes (the name may end with a definition's name: `a.b.c.Klass.method`); at least two
    parts must match, so that `self.x` or `np.array` name nothing."""
    by_stem = _by_stem(known)
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        for end in range(len(parts), 1, -1):
            prefix = parts[:end]
            candidates = by_stem.get(prefix[-1], [])
            matched = _longest_suffix_matches(prefix, candidates, stems=True)
            if matched and len(matched) <= 3:
                found.update(matched)
                break
    return found


def _by_file_name(known: set[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for path in known:
        grouped.setdefault(path.rsplit("/", 1)[-1], []).append(path)
    return grouped


def _by_stem(known: set[str]) -> dict[str, list[str]]:
    """Files by the name a module path calls them: the file name without extension, or the folder's name for a
    package file (pkg/__init__.py is `pkg`)."""
    grouped: dict[str, list[str]] = {}
    for path in known:
        parts = path.split("/")
        stem = parts[-1].split(".", 1)[0]
        if stem in PACKAGE_FILE_STEMS and len(parts) > 1:
            stem = parts[-2]
        grouped.setdefault(stem, []).append(path)
    return grouped


def _module_parts(path: str) -> list[str]:
    """A file's path as module parts: pkg/mod.py -> [pkg, mod]; pkg/__init__.py -> [pkg]."""
    parts = path.split("/")
    parts[-1] = parts[-1].split(".", 1)[0]
    if parts[-1] in PACKAGE_FILE_STEMS and len(parts) > 1:
        parts.pop()
    return parts


def _longest_suffix_matches(parts: list[str], candidates: list[str], stems: bool = False) -> list[str]:
    """The candidates whose path ends with the most of ``parts`` (at least the last; two for module paths)."""
    best, matched = 0, []
    for path in candidates:
        theirs = _module_parts(path) if stems else path.split("/")
        common = 0
        while common < min(len(parts), len(theirs)) and parts[-1 - common] == theirs[-1 - common]:
            common += 1
        if common > best:
            best, matched = common, [path]
        elif common == best and common:
            matched.append(path)
    return matched if best >= (2 if stems else 1) else []

