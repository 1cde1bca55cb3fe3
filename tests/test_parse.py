"""The chunker and symbol extractor on real tree-sitter grammars, against fixtures with known content.

Every expected value below is read off the fixture files in tests/fixtures/langs/ (line numbers, names, docs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from repochat.index import parse as parse_module
from repochat.index.parse import ParsedFile, parse_file
from repochat.index.pieces import split_lines
from repochat.records import Chunk
from repochat.tokens import count_tokens

FIXTURES = Path(__file__).parent / "fixtures" / "langs"

# fixture -> (language, chunks as (kind, symbol, first line, last line), docs by symbol)
CHUNKS: dict[str, tuple[str, list[tuple[str, str, int, int]], dict[str, str]]] = {
    "sample.py": ("python", [
        ("module", "", 1, 3), ("function", "price_of", 6, 8), ("class", "Warehouse", 11, 26), ("module", "", 29, 30),
    ], {"price_of": "Prices are stored in cents.", "Warehouse": "Holds items by name."}),
    "sample.js": ("javascript", [
        ("module", "", 1, 1), ("function", "formatPrice", 3, 8), ("function", "parseLine", 10, 13),
        ("class", "Cart", 15, 30), ("module", "", 32, 32),
    ], {"formatPrice": "Formats a price in euros."}),
    "sample.ts": ("typescript", [
        ("module", "", 1, 1), ("interface", "Job", 3, 7), ("type", "JobId", 9, 9), ("enum", "Priority", 11, 14),
        ("class", "Scheduler", 16, 32), ("function", "countJobs", 34, 36),
    ], {"Job": "Something that can be scheduled."}),
    "sample.tsx": ("tsx", [
        ("module", "", 1, 1), ("interface", "CounterProps", 3, 5), ("function", "Counter", 7, 11),
        ("function", "formatCount", 13, 13), ("class", "Panel", 15, 19),
    ], {"Counter": "A button that counts clicks."}),
    "sample.go": ("go", [
        ("module", "", 1, 6), ("struct", "Point", 8, 11), ("interface", "Shape", 13, 16),
        ("method", "Point.Distance", 18, 21), ("function", "square", 23, 25), ("function", "NewPoint", 27, 31),
    ], {"Point": "Point is a location on the plane.",
        "Point.Distance": "Distance returns the distance between two points."}),
    "sample.rs": ("rust", [
        ("module", "", 1, 1), ("struct", "Cache", 3, 8), ("trait", "Store", 10, 12), ("impl", "Cache", 14, 26),
        ("impl", "Cache", 28, 32), ("function", "evict", 34, 39),
    ], {"Cache": "A key-value cache with a fixed capacity."}),
    "Sample.java": ("java", [
        ("module", "", 1, 4), ("class", "Order", 6, 32), ("enum", "Status", 34, 34),
    ], {"Order": "An order with lines."}),
    "sample.c": ("c", [
        ("module", "", 1, 2), ("struct", "buffer", 4, 8), ("enum", "color_t", 10, 10), ("module", "", 12, 12),
        ("function", "buffer_append", 14, 23), ("function", "grow", 25, 32),
    ], {"buffer": "A growable buffer of bytes.", "buffer_append": "Appends bytes to the buffer."}),
    "sample.cpp": ("cpp", [
        ("module", "", 1, 2), ("module", "geo", 4, 4), ("class", "geo.Polygon", 6, 15),
        ("method", "geo.Polygon.area", 17, 23), ("function", "geo.clamp", 25, 28), ("module", "geo", 30, 30),
    ], {"geo.Polygon": "A polygon made of points."}),
    "Sample.cs": ("c_sharp", [
        ("module", "", 1, 2), ("module", "Shop.Billing", 4, 5), ("class", "Shop.Billing.InvoiceService", 6, 24),
        ("interface", "Shop.Billing.IInvoiceService", 26, 29), ("record", "Shop.Billing.Invoice", 31, 31),
        ("enum", "Shop.Billing.Currency", 33, 34),
    ], {"Shop.Billing.InvoiceService": "<summary>Computes invoices.</summary>"}),
    "sample.rb": ("ruby", [
        ("module", "", 1, 1), ("module", "Bank", 3, 4), ("class", "Bank.Account", 5, 24),
        ("method", "Bank.log_event", 26, 29),
    ], {"Bank": "Keeps accounts in memory.", "Bank.Account": "An account with a balance."}),
    "sample.php": ("php", [
        ("module", "", 1, 5), ("class", "InvoiceMailer", 7, 25), ("interface", "Transport", 27, 30),
        ("function", "render_invoice", 32, 35),
    ], {"InvoiceMailer": "Sends invoices to customers."}),
    "sample.sh": ("bash", [
        ("module", "", 1, 2), ("function", "log", 4, 7), ("function", "backup_dir", 9, 13), ("module", "", 15, 16),
    ], {"log": "Prints a message with a timestamp."}),
}

# fixture -> definitions (name, kind, line, scope) and references (name, kind, line, scope) that must be found
DEFINITIONS: dict[str, list[tuple[str, str, int, str]]] = {
    "sample.py": [("price_of", "function", 7, ""), ("Warehouse", "class", 11, ""),
                  ("__init__", "method", 16, "Warehouse"), ("total", "method", 21, "Warehouse"),
                  ("dump", "method", 25, "Warehouse")],
    "sample.js": [("formatPrice", "function", 6, ""), ("parseLine", "function", 10, ""), ("Cart", "class", 15, ""),
                  ("add", "method", 22, "Cart"), ("total", "method", 27, "Cart")],
    "sample.ts": [("Job", "interface", 4, ""), ("JobId", "type", 9, ""), ("Priority", "enum", 11, ""),
                  ("Scheduler", "class", 16, ""), ("schedule", "method", 22, "Scheduler"),
                  ("tick", "method", 27, "Scheduler"), ("countJobs", "function", 34, "")],
    "sample.tsx": [("CounterProps", "interface", 3, ""), ("Counter", "function", 8, ""),
                   ("formatCount", "function", 13, ""), ("Panel", "class", 15, ""), ("render", "method", 16, "Panel")],
    "sample.go": [("Point", "struct", 9, ""), ("Shape", "interface", 14, ""), ("Area", "method", 15, "Shape"),
                  ("Distance", "method", 19, "Point"), ("square", "function", 23, ""),
                  ("NewPoint", "function", 28, "")],
    "sample.rs": [("Cache", "struct", 5, ""), ("Store", "trait", 10, ""), ("get", "method", 11, "Store"),
                  ("new", "method", 16, "Cache"), ("insert", "method", 20, "Cache"), ("get", "method", 29, "Cache"),
                  ("evict", "function", 34, "")],
    "Sample.java": [("Order", "class", 9, ""), ("Order", "method", 12, "Order"), ("addLine", "method", 18, "Order"),
                    ("validate", "method", 23, "Order"), ("Visitor", "interface", 29, "Order"),
                    ("visit", "method", 30, "Order.Visitor"), ("Status", "enum", 34, "")],
    "sample.c": [("buffer", "struct", 5, ""), ("color_t", "enum", 10, ""), ("grow", "function", 12, ""),
                 ("buffer_append", "function", 15, ""), ("grow", "function", 25, "")],
    "sample.cpp": [("geo", "module", 4, ""), ("Polygon", "class", 7, "geo"), ("Polygon", "method", 9, "geo.Polygon"),
                   ("area", "method", 11, "geo.Polygon"), ("area", "method", 17, "geo.Polygon"),
                   ("clamp", "function", 26, "geo")],
    "Sample.cs": [("Shop.Billing", "module", 4, ""), ("InvoiceService", "class", 7, "Shop.Billing"),
                  ("Total", "method", 17, "Shop.Billing.InvoiceService"),
                  ("IInvoiceService", "interface", 26, "Shop.Billing"),
                  ("Total", "method", 28, "Shop.Billing.IInvoiceService"), ("Currency", "enum", 33, "Shop.Billing")],
    "sample.rb": [("Bank", "module", 4, ""), ("Account", "class", 6, "Bank"),
                  ("initialize", "method", 9, "Bank.Account"), ("deposit", "method", 15, "Bank.Account"),
                  ("open", "method", 21, "Bank.Account"), ("log_event", "method", 26, "Bank")],
    "sample.php": [("InvoiceMailer", "class", 10, ""), ("__construct", "method", 14, "InvoiceMailer"),
                   ("send", "method", 20, "InvoiceMailer"), ("Transport", "interface", 27, ""),
                   ("deliver", "method", 29, "Transport"), ("render_invoice", "function", 32, "")],
    "sample.sh": [("log", "function", 5, ""), ("backup_dir", "function", 9, "")],
}

REFERENCES: dict[str, list[tuple[str, str, int, str]]] = {
    "sample.py": [("price_of", "call", 23, "Warehouse.total"), ("Store", "class", 11, "Warehouse"),
                  ("dumps", "call", 26, "Warehouse.dump"), ("Warehouse", "call", 30, ""),
                  ("Decimal", "import", 3, "")],
    "sample.js": [("parseLine", "call", 23, "Cart.add"), ("formatPrice", "call", 24, "Cart.add"),
                  ("EventEmitter", "class", 15, "Cart"), ("EventEmitter", "import", 1, "")],
    "sample.ts": [("countJobs", "call", 30, "Scheduler.tick"), ("Job", "type", 22, "Scheduler.schedule"),
                  ("Clock", "import", 1, "")],
    "sample.tsx": [("formatCount", "call", 10, "Counter"), ("useState", "call", 9, "Counter")],
    "sample.go": [("square", "call", 20, "Point.Distance"), ("Println", "call", 29, "NewPoint"),
                  ("Point", "type", 30, "NewPoint")],
    "sample.rs": [("evict", "call", 22, "Cache.insert"), ("Store", "implementation", 28, "Cache"),
                  ("Cache", "class", 17, "Cache.new"), ("HashMap", "import", 1, "")],
    "Sample.java": [("validate", "call", 20, "Order.addLine"),
                    ("IllegalArgumentException", "class", 25, "Order.validate"),
                    ("ArrayList", "class", 10, "Order"), ("Comparable", "implementation", 9, "Order")],
    "sample.c": [("grow", "call", 17, "buffer_append"), ("memcpy", "call", 20, "buffer_append"),
                 ("realloc", "call", 27, "grow")],
    "sample.cpp": [("cross", "call", 20, "geo.Polygon.area"), ("Shape", "class", 7, "geo.Polygon"),
                   ("max", "call", 27, "geo.clamp")],
    "Sample.cs": [("TaxFor", "call", 20, "Shop.Billing.InvoiceService.Total"),
                  ("IInvoiceService", "implementation", 7, "Shop.Billing.InvoiceService"),
                  ("Invoice", "type", 17, "Shop.Billing.InvoiceService.Total")],
    "sample.rb": [("log_event", "call", 18, "Bank.Account.deposit"), ("Base", "class", 6, "Bank.Account"),
                  ("JSON", "class", 27, "Bank.log_event")],
    "sample.php": [("render_invoice", "call", 22, "InvoiceMailer.send"), ("deliver", "call", 23, "InvoiceMailer.send"),
                   ("Mailer", "class", 10, "InvoiceMailer"), ("Invoice", "import", 5, "")],
    "sample.sh": [("log", "call", 11, "backup_dir"), ("backup_dir", "call", 15, ""), ("tar", "call", 12, "backup_dir")],
}


def parse_fixture(name: str, max_chunk_tokens: int = 400) -> ParsedFile:
    return parse_file(f"src/{name}", (FIXTURES / name).read_text(encoding="utf-8"), max_chunk_tokens)


def assert_covers(chunks: list[Chunk], text: str) -> None:
    """Chunks are in order, do not overlap, hold exact file lines, and cover every non-blank line."""
    lines = text.replace("\r\n", "\n").split("\n")
    covered: set[int] = set()
    previous_end = 0
    for chunk in chunks:
        assert previous_end < chunk.start_line <= chunk.end_line, (chunk.start_line, chunk.end_line, previous_end)
        assert chunk.text == "\n".join(lines[chunk.start_line - 1:chunk.end_line])
        covered.update(range(chunk.start_line, chunk.end_line + 1))
        previous_end = chunk.end_line
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert not missing, f"lines in no chunk: {missing[:10]}"


def test_every_language_has_a_fixture() -> None:
    assert {language for language, _, _ in CHUNKS.values()} >= {
        "python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "c_sharp", "ruby", "php",
        "bash"}


@pytest.mark.parametrize("name", sorted(CHUNKS))
def test_fixture_chunks(name: str) -> None:
    language, expected, docs = CHUNKS[name]
    parsed = parse_fixture(name)
    assert parsed.language == language
    assert [(c.kind, c.symbol, c.start_line, c.end_line) for c in parsed.chunks] == expected
    by_symbol: dict[str, Chunk] = {}
    for chunk in parsed.chunks:
        by_symbol.setdefault(chunk.symbol, chunk)  # the first chunk of a name (a Rust struct before its impl)
    for symbol, doc in docs.items():
        assert by_symbol[symbol].doc == doc
    for chunk in parsed.chunks:
        assert chunk.path == f"src/{name}" and chunk.language == language
        assert chunk.tokens == count_tokens(chunk.text)
    assert_covers(parsed.chunks, (FIXTURES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_fixture_definitions(name: str) -> None:
    parsed = parse_fixture(name)
    found = {(s.name, s.kind, s.line, s.scope) for s in parsed.symbols if s.role == "definition"}
    missing = [d for d in DEFINITIONS[name] if d not in found]
    assert not missing, f"missing {missing}; found {sorted(found, key=lambda d: d[2])}"
    assert all(s.path == f"src/{name}" for s in parsed.symbols)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_fixture_references(name: str) -> None:
    parsed = parse_fixture(name)
    found = {(s.name, s.kind, s.line, s.scope) for s in parsed.symbols if s.role == "reference"}
    missing = [r for r in REFERENCES[name] if r not in found]
    assert not missing, f"missing {missing}; found {sorted(found, key=lambda r: r[2])}"


def test_symbols_are_in_file_order_and_unique() -> None:
    parsed = parse_fixture("sample.py")
    lines = [s.line for s in parsed.symbols]
    assert lines == sorted(lines)
    definitions = [(s.name, s.line) for s in parsed.symbols if s.role == "definition"]
    assert len(definitions) == len(set(definitions))


def test_signatures() -> None:
    by_symbol = {c.symbol: c for c in parse_fixture("sample.py").chunks}
    assert by_symbol["price_of"].signature == "def price_of(item: dict) -> Decimal:"
    assert by_symbol["Warehouse"].signature == "class Warehouse(Store):"
    go = {c.symbol: c for c in parse_fixture("sample.go").chunks}
    assert go["Point.Distance"].signature == "func (p *Point) Distance(q Point) float64"
    cpp = {c.symbol: c for c in parse_fixture("sample.cpp").chunks}
    assert cpp["geo.clamp"].signature == "template <typename T>\nT clamp(T value, T low, T high)"


def test_oversized_class_is_split_into_methods_with_class_context() -> None:
    # Warehouse (lines 11-26) is ~100 tokens; each method is under 60.
    parsed = parse_fixture("sample.py", max_chunk_tokens=60)
    rows = [(c.kind, c.symbol, c.start_line, c.end_line, c.context) for c in parsed.chunks]
    header = "class Warehouse(Store):"
    assert rows == [
        ("module", "", 1, 3, ""), ("function", "price_of", 6, 8, ""), ("class", "Warehouse", 11, 14, ""),
        ("method", "Warehouse.__init__", 16, 18, header), ("method", "Warehouse.total", 20, 23, header),
        ("method", "Warehouse.dump", 25, 26, header), ("module", "", 29, 30, ""),
    ]
    total = next(c for c in parsed.chunks if c.symbol == "Warehouse.total")
    assert total.doc == "Sum of all prices."
    assert total.signature == "@property\ndef total(self) -> Decimal:"


def test_oversized_js_class_keeps_leading_comment_with_its_method() -> None:
    parsed = parse_fixture("sample.js", max_chunk_tokens=45)
    rows = [(c.kind, c.symbol, c.start_line, c.end_line) for c in parsed.chunks if c.symbol.startswith("Cart")]
    # The class's closing brace (line 30) is too small to stand alone and joins the last method.
    assert rows == [("class", "Cart", 15, 15), ("method", "Cart.constructor", 16, 19), ("method", "Cart.add", 21, 25),
                    ("method", "Cart.total", 27, 30)]
    add = next(c for c in parsed.chunks if c.symbol == "Cart.add")
    assert add.doc == "Adds one line and notifies listeners."
    assert add.context == "class Cart extends EventEmitter"


def test_oversized_function_is_cut_on_statement_boundaries() -> None:
    body = "".join(f"    total = combine(\n        total,\n        {i},\n    )\n" for i in range(120))
    text = f"def accumulate(total):\n    \"\"\"Adds many numbers.\"\"\"\n{body}    return total\n"
    parsed = parse_file("big.py", text, max_chunk_tokens=100)
    assert len(parsed.chunks) > 5
    lines = text.split("\n")
    for chunk in parsed.chunks:
        assert (chunk.kind, chunk.symbol, chunk.context) == ("function", "accumulate", "def accumulate(total):")
        assert chunk.doc == "Adds many numbers."
        # every window after the first starts where a statement starts, never inside the 4-line call
        if chunk.start_line > 1:
            assert lines[chunk.start_line - 1].startswith(("    total = combine(", "    return")), chunk.start_line
        assert chunk.tokens <= 100 * 1.5
    assert_covers(parsed.chunks, text)


def test_module_level_code_is_windowed_when_large() -> None:
    text = "".join(f"registry.register(\"option_{i}\", default=None)\n" for i in range(400)) + \
        "def after():\n    return registry\n"
    parsed = parse_file("settings.py", text, max_chunk_tokens=100)
    modules = [c for c in parsed.chunks if c.kind == "module"]
    assert len(modules) > 3 and all(c.tokens <= 150 for c in modules)
    assert parsed.chunks[-1].symbol == "after" and parsed.chunks[-1].start_line == 401
    assert_covers(parsed.chunks, text)


def test_crlf_gives_the_same_chunks_and_symbols() -> None:
    text = (FIXTURES / "sample.py").read_text(encoding="utf-8")
    unix = parse_file("a.py", text)
    windows = parse_file("a.py", text.replace("\n", "\r\n"))
    assert [(c.kind, c.symbol, c.start_line, c.end_line, c.text, c.doc) for c in windows.chunks] == \
        [(c.kind, c.symbol, c.start_line, c.end_line, c.text, c.doc) for c in unix.chunks]
    assert windows.symbols == unix.symbols
    assert all("\r" not in c.text for c in windows.chunks)


def test_syntax_errors_still_give_chunks() -> None:
    text = ("def fine():\n    return 1\n\n\ndef broken(:\n    pass ]]\n\n\n"
            "class Kept:\n    def method(self):\n        return fine()\n")
    parsed = parse_file("broken.py", text)
    symbols = {c.symbol for c in parsed.chunks}
    assert "fine" in symbols and "Kept" in symbols
    assert ("fine", "Kept.method") in {(s.name, s.scope) for s in parsed.symbols if s.role == "reference"}
    assert_covers(parsed.chunks, text)


def test_query_failure_falls_back_to_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise ValueError("query cannot handle this file")

    monkeypatch.setattr(parse_module, "extract_definitions", fail)
    text = (FIXTURES / "sample.go").read_text(encoding="utf-8")
    parsed = parse_file("geometry.go", text)
    assert parsed.language == "go" and parsed.symbols == []
    assert {c.kind for c in parsed.chunks} == {"window"}
    assert_covers(parsed.chunks, text)


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n"])
def test_empty_files_have_no_chunks(text: str) -> None:
    for path in ("empty.py", "empty.md", "empty.css"):
        assert parse_file(path, text).chunks == []


def test_markdown_sections_follow_headings() -> None:
    text = ("Preamble line.\n\n# Guide\n\nIntro text.\n\n## Install\n\nRun pip.\n\n```sh\n# not a heading\n```\n\n"
            "## Usage\n\nAsk away.\n\nSetext Title\n============\n\nBody.\n")
    parsed = parse_file("docs/README.md", text)
    assert parsed.language == "markdown" and parsed.symbols == []
    rows = [(c.kind, c.symbol, c.start_line, c.end_line, c.context) for c in parsed.chunks]
    assert rows == [
        ("section", "", 1, 1, ""), ("section", "Guide", 3, 5, ""), ("section", "Install", 7, 13, "Guide"),
        ("section", "Usage", 15, 17, "Guide"), ("section", "Setext Title", 19, 22, ""),
    ]
    assert_covers(parsed.chunks, text)


def test_big_markdown_section_is_windowed_under_its_heading() -> None:
    text = "# Reference\n\n" + "".join(f"Paragraph {i} explains option number {i} in detail.\n\n" for i in range(80))
    parsed = parse_file("ref.md", text, max_chunk_tokens=80)
    assert len(parsed.chunks) > 3
    assert all(c.symbol == "Reference" and c.kind == "section" for c in parsed.chunks)
    assert_covers(parsed.chunks, text)


def test_prose_is_cut_at_paragraphs() -> None:
    paragraphs = [f"Paragraph {i} says something.\nIt spans two lines." for i in range(60)]
    text = "\n\n".join(paragraphs) + "\n"
    parsed = parse_file("notes.txt", text, max_chunk_tokens=60)
    lines = text.split("\n")
    assert parsed.language == "text" and len(parsed.chunks) > 5
    for chunk in parsed.chunks:
        assert chunk.kind == "section"
        assert lines[chunk.start_line - 1].startswith("Paragraph")
        assert lines[chunk.end_line - 1] == "It spans two lines."
    assert_covers(parsed.chunks, text)


def test_other_text_files_get_line_windows() -> None:
    text = "".join(f".rule-{i} {{ color: #{i:06x}; }}\n" for i in range(300))
    parsed = parse_file("static/site.css", text)
    assert parsed.language == "text" and parsed.symbols == []
    assert all(c.kind == "window" and c.end_line - c.start_line < 60 for c in parsed.chunks)
    assert len(parsed.chunks) >= 5
    assert_covers(parsed.chunks, text)


def test_minified_code_does_not_blow_up() -> None:
    text = "".join(f"function f{i}(a){{return g(a)+{i}}};" for i in range(20000)) + "\n"
    parsed = parse_file("vendor/app.min.js", text)
    assert len(parsed.chunks) == 1 and parsed.chunks[0].start_line == 1
    assert len(parsed.chunks[0].signature) < 1200
    assert any(s.name == "g" and s.role == "reference" for s in parsed.symbols)
    long_text = "x" * 500_000 + "\nshort\n"
    windows = parse_file("data.log", long_text)
    assert_covers(windows.chunks, long_text)


def test_lines_are_counted_as_git_and_tree_sitter_count_them() -> None:
    # only "\n" ends a line: a lone "\r" or a CRLF's "\r" stays inside it, as in git's hunks and tree-sitter's rows
    assert split_lines("a\r\nb\rc\n") == ["a\r", "b\rc"]
    # a final newline ends the last line and starts no new one; an empty line before it is still a line
    assert split_lines("x\n\n") == ["x", ""]
    assert split_lines("x") == ["x"]
    assert split_lines("") == []
