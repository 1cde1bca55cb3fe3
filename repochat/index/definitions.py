"""Definitions of a parsed file as a nesting tree, read with the language's chunks.scm query.

Capture names (one scheme for every language):
  @chunk.<kind>   the definition node (function, method, class, struct, interface, trait, impl, enum, module, ...)
  @name           the defined name inside it (required; a match without one is ignored)
  @parent         optional: a name the definition belongs to although not nested in it (a Go receiver type,
                  the "Foo" of C++ "Foo::bar"); it is put in front of the qualified name
  @body           optional: the body, so the signature is everything before it
  @doc            optional: the docstring node
  @leading        a node that belongs to the definition below it when directly above it (attributes)
  @leading.doc    the same for comments, whose text is the definition's doc when it has no @doc
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass, field

from tree_sitter import Node, QueryCursor, Tree

from repochat.index.languages import LanguageSpec, node_text, ts_query

# A function defined directly inside one of these is a method.
METHOD_CONTAINERS = frozenset({"class", "struct", "interface", "trait", "impl", "enum", "object", "record"})
MAX_SIGNATURE_LINES = 8
MAX_SIGNATURE_BYTES = 1000  # minified code can put a whole program before a body
MAX_INDENT = 200

_COMMENT_MARKER = re.compile(r"^\s*(?:/\*+!?|\*+/|\*(?!/)|//[/!]?|#+!?|--|;+|%+|=begin|=end)\s?")
_STRING_QUOTES = re.compile(r"""^[rRbBuUfF@]{0,2}("{3}|'{3}|"|'|`)(.*)\1$""", re.DOTALL)


@dataclass(eq=False)
class Definition:
    kind: str
    name: str
    qualname: str
    start_byte: int
    end_byte: int
    start_row: int  # 0-based first line, leading comments/attributes included
    end_row: int  # 0-based last line, inclusive
    signature: str
    doc: str
    name_byte: int  # where the @name node starts: ties tags.scm definitions to this one
    body_rows: tuple[int, ...] = ()  # start rows of the body's statements, where an oversized body may be cut
    children: list[Definition] = field(default_factory=list, repr=False)
    parent: Definition | None = field(default=None, repr=False)


@dataclass
class _Match:
    kind: str
    node: Node
    name: Node
    parent: Node | None
    body: Node | None
    doc: Node | None


def _end_row(node: Node) -> int:
    """Last line a node covers: one that ends at column 0 stops on the line before."""
    row, column = node.end_point
    return row - 1 if column == 0 and row > node.start_point.row else row


def clean_doc(raw: str) -> str:
    """Doc text without quotes or comment markers, dedented."""
    text = raw.strip()
    quoted = _STRING_QUOTES.match(text)
    if quoted:
        return inspect.cleandoc(quoted.group(2))
    lines = [_COMMENT_MARKER.sub("", line).rstrip() for line in text.splitlines()]
    lines = [line[:-2].rstrip() if line.endswith("*/") else line for line in lines]
    return inspect.cleandoc("\n".join(lines)).strip()


Leading = dict[int, tuple[Node, bool]]  # last row -> (comment or attribute node, whether its text is doc)


def _collect(matches: list[tuple[int, dict[str, list[Node]]]]) -> tuple[list[_Match], Leading]:
    """Definition matches, one per name node (the outermost wins), and leading nodes by their last row."""
    by_name: dict[tuple[int, int], _Match] = {}
    leading: Leading = {}
    for _, captures in matches:
        for capture, nodes in captures.items():
            if capture.startswith("leading"):
                for node in nodes:
                    row = _end_row(node)
                    if row not in leading or node.start_byte < leading[row][0].start_byte:
                        leading[row] = (node, capture == "leading.doc")
                continue
            if not capture.startswith("chunk.") or "name" not in captures:
                continue
            node, name = nodes[0], captures["name"][0]
            key = (name.start_byte, name.end_byte)
            known = by_name.get(key)
            if known is None or node.end_byte - node.start_byte > known.node.end_byte - known.node.start_byte:
                by_name[key] = _Match(capture[6:], node, name, _first(captures, "parent"), _first(captures, "body"),
                                      _first(captures, "doc"))
    return sorted(by_name.values(), key=lambda m: (m.node.start_byte, -m.node.end_byte)), leading


def _first(captures: dict[str, list[Node]], name: str) -> Node | None:
    nodes = captures.get(name)
    return nodes[0] if nodes else None


def _first_comment_inside(match: _Match, stop: int, leading: Leading) -> int:
    """Where the first comment between a definition's start and ``stop`` begins (``stop`` when none)."""
    for row in range(match.node.start_point.row, match.node.start_point.row + MAX_SIGNATURE_LINES + 1):
        entry = leading.get(row)
        if entry is not None and match.node.start_byte < entry[0].start_byte < stop:
            return entry[0].start_byte
    return stop


def _signature(match: _Match, source: bytes, leading: Leading) -> str:
    """The definition's text up to its body (first line without a body), dedented as a block."""
    start = match.node.start_byte
    stop = match.body.start_byte if match.body is not None and match.body.start_byte > start else None
    if stop is not None:
        stop = _first_comment_inside(match, stop, leading)
    if stop is None:
        newline = source.find(b"\n", start, match.node.end_byte)
        stop = newline if newline >= 0 else match.node.end_byte
    text = source[start:min(stop, start + MAX_SIGNATURE_BYTES)].decode("utf-8", "replace").strip()
    if "\n" not in text:
        return text
    # Later lines keep the file's indentation; put the first line's back so the block dedents evenly.
    column = match.node.start_point.column
    indent = source[start - column:start].decode("utf-8", "replace") if column <= MAX_INDENT else ""
    lines = textwrap.dedent(indent + text if indent.isspace() else text).strip().splitlines()
    return "\n".join(line.rstrip() for line in lines[:MAX_SIGNATURE_LINES])


def _extend_upwards(row: int, leading: Leading, lines: list[str]) -> tuple[int, str]:
    """Move the first row up over comments/attributes that end right above it and start their own line.

    Returns the new first row and the text of the doc comments passed over, top to bottom.
    """
    docs: list[str] = []
    while row - 1 in leading:
        node, is_doc = leading[row - 1]
        start_row, start_col = node.start_point
        if lines[start_row][:start_col].strip():
            break
        if is_doc:
            docs.append(node_text(node))
        row = start_row
    return row, "\n".join(reversed(docs))


def _body_rows(body: Node | None) -> tuple[int, ...]:
    if body is None:
        return ()
    return tuple(child.start_point.row for child in body.named_children)


def _definition(match: _Match, leading: Leading, lines: list[str], source: bytes) -> Definition:
    start_row, comments = _extend_upwards(match.node.start_point.row, leading, lines)
    doc = node_text(match.doc) if match.doc is not None else comments
    name = node_text(match.name)
    owner = node_text(match.parent) + "." if match.parent is not None else ""
    return Definition(match.kind, name, owner + name, match.node.start_byte, match.node.end_byte, start_row,
                      _end_row(match.node), _signature(match, source, leading), clean_doc(doc) if doc else "",
                      match.name.start_byte, _body_rows(match.body))


def _nest(definitions: list[Definition]) -> list[Definition]:
    """Turn definitions sorted by (start, -end) into a tree by byte ranges; qualify names and method kinds."""
    roots: list[Definition] = []
    stack: list[Definition] = []
    for definition in definitions:
        while stack and stack[-1].end_byte <= definition.start_byte:
            stack.pop()
        if stack:
            parent = stack[-1]
            parent.children.append(definition)
            definition.parent = parent
            definition.qualname = f"{parent.qualname}.{definition.qualname}"
            if definition.kind == "function" and parent.kind in METHOD_CONTAINERS:
                definition.kind = "method"
        else:
            roots.append(definition)
        stack.append(definition)
    return roots


def _unwrap(found: list[_Match], wrappers: tuple[str, ...]) -> list[_Match]:
    """Widen each definition to the wrapper nodes directly around it (a C++ template_declaration)."""
    for match in found:
        parent = match.node.parent
        while parent is not None and parent.type in wrappers:
            match.node, parent = parent, parent.parent
    return found


def extract_definitions(spec: LanguageSpec, tree: Tree, source: bytes, lines: list[str]) -> list[Definition]:
    """Top-level definitions of the file (each with its nested ones), in file order."""
    matches = QueryCursor(ts_query(spec, "chunks.scm")).matches(tree.root_node)
    found, leading = _collect(matches)
    if spec.wrappers:
        found = _unwrap(found, spec.wrappers)
    return _nest([_definition(match, leading, lines, source) for match in found])
