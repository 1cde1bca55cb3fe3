"""rank_files: files ranked by the evidence of their chunks and of what a question writes (paths, module paths,
names), over a real index of a small repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from repochat.cli.main import cli
from repochat.config import load_settings
from devtools.evaluate.bm25 import WindowBM25, is_test_path
from repochat.index.indexer import update_index
from repochat.index.store import IndexStore
from repochat.retrieve.questions import file_query
from repochat.retrieve.excerpts import MAP_PATH, UNRANKED, retrieval_excerpts
from repochat.retrieve.files import code_names, dotted_names, path_mentions, path_word_scores, rank_files
from repochat.retrieve.search import search

SHOP = {
    "shop/__init__.py": "from .cart import Cart\n",
    "shop/cart.py": (
        "from .pricing import apply_discount\n\n\n"
        "class Cart:\n"
        "    def __init__(self):\n        self.items = []\n\n"
        "    def add(self, name, price, quantity=1):\n        self.items.append((name, price, quantity))\n\n"
        "    def total(self, code=None):\n"
        "        subtotal = sum(price * quantity for _, price, quantity in self.items)\n"
        "        average = subtotal / len(self.items)\n"
        "        return apply_discount(subtotal, code), average\n"),
    "shop/pricing.py": (
        "def apply_discount(total, code):\n    \"\"\"The total after the discount of a code.\"\"\"\n"
        "    return total * 0.9 if code else total\n\n\n"
        "def round_price(value):\n    return int(value)\n"),
    # Four chunks about coupon expiry: the file is about it, though no one chunk is a close match.
    "shop/coupons.py": (
        "import datetime\n\n\n"
        "def valid_until(ticket):\n    \"\"\"A coupon's expiry date: when it stops being valid.\"\"\"\n"
        "    return ticket.issued + datetime.timedelta(days=ticket.days)\n\n\n"
        "def lapsed(ticket, today):\n    \"\"\"Whether the coupon's expiry date has passed.\"\"\"\n"
        "    return valid_until(ticket) < today\n\n\n"
        "def push_back(ticket, days):\n    \"\"\"Move the coupon's expiry date later.\"\"\"\n"
        "    ticket.days += days\n\n\n"
        "def all_lapsed(tickets, today):\n    \"\"\"The coupons past their expiry date.\"\"\"\n"
        "    return [t for t in tickets if lapsed(t, today)]\n"),
    # One short chunk that repeats the words: the best single chunk for the query below, in a file mostly about
    # something else (a file of nothing but the query's words would be the best whole-file match).
    "shop/notes.py": ("def note():\n    \"\"\"Coupon expiry date handling.\"\"\"\n\n\n"
                      "def greeting(customer):\n    \"\"\"The welcome line of a receipt.\"\"\"\n"
                      "    return 'Welcome back, ' + customer.name + '! Thank you for shopping with us.'\n\n\n"
                      "def farewell(customer):\n    \"\"\"The last line of a receipt.\"\"\"\n"
                      "    return 'Goodbye, ' + customer.name + ', see you soon at our shop.'\n"),
    "tests/test_pricing.py": (
        "from shop.pricing import apply_discount, round_price\n\n\n"
        "def test_round_price_rounds_half_up():\n    assert round_price(2.5) == 3\n\n\n"
        "def test_round_price_of_a_whole_price():\n    assert round_price(2.0) == 2\n"),
    "docs/pricing.md": "# Prices\n\nround_price rounds a price: round_price(2.5) is 3.\n",
    # A copy of another project's code.
    "shop/_vendor/dates.py": "def parse_date(text):\n    \"\"\"A date from its text.\"\"\"\n"
                             "    return text.split('-')\n",
}


@pytest.fixture
def shop(make_repo: Callable[..., Path]) -> IndexStore:
    root = make_repo(SHOP)
    settings = load_settings(root)
    update_index(root, settings)
    return IndexStore.open(settings.index_path(root))


def ranked(store: IndexStore, query: str, k: int = 10, **weights: float) -> list[str]:
    return [hit.path for hit in rank_files(store, query, k=k, mode="fts", weights=weights)]


def test_a_file_with_several_matching_chunks_outranks_one_close_match(shop: IndexStore) -> None:
    query = "coupon expiry date handling"
    # The closest chunk is the short note, so files in the order of their first chunk put notes.py first.
    assert search(shop, query, k=1, mode="fts", path_glob="shop/*.py")[0].path == "shop/notes.py"
    files = [hit.path for hit in rank_files(shop, query, mode="fts", path_glob="shop/*.py")]
    assert files[0] == "shop/coupons.py" and "shop/_vendor/dates.py" not in files
    unsummed = dict(text=0.0, more=0.0, code=0.0, bm25=0.0, size=0.0)  # each file by its best chunk alone
    assert rank_files(shop, query, mode="fts", path_glob="shop/*.py", weights=unsummed)[0].path == "shop/notes.py"


def test_a_stack_trace_names_the_file(shop: IndexStore) -> None:
    query = ("A coupon makes checkout fail\n\n"
             "Traceback (most recent call last):\n"
             '  File "/home/me/venv/lib/python3.11/site-packages/shop/pricing.py", line 3, in <module>\n'
             "TypeError: unsupported operand\n")
    assert ranked(shop, query)[0] == "shop/pricing.py"
    assert ranked(shop, query, path=0.0, last_path=0.0)[0] != "shop/pricing.py"  # the words point elsewhere


def test_a_file_named_in_the_title(shop: IndexStore) -> None:
    assert ranked(shop, "Pricing is off\nThe coupon expiry date handling gives a wrong number.")[0] == \
        "shop/pricing.py"
    known = {"sympy/printing/latex.py", "sympy/printing/str.py", "sympy/core/expr.py", "sympy/matrices/dense.py",
             "sympy/utilities/expand_modules.py"}
    scores = path_word_scores("LaTeX printing for Matrix Expression", known)
    assert max(scores, key=scores.__getitem__) == "sympy/printing/latex.py"  # its name and its folder
    assert scores["sympy/printing/str.py"] < scores["sympy/printing/latex.py"]
    assert set(path_word_scores("Linting fails if a module contains modules", known)) == \
        {"sympy/utilities/expand_modules.py"}  # a plural finds the singular in a name's parts


def test_vendored_copies_rank_low(shop: IndexStore) -> None:
    query = "parse a date from its text"
    assert ranked(shop, query, vendored=0.0)[0] == "shop/_vendor/dates.py"
    assert ranked(shop, query)[0] != "shop/_vendor/dates.py"


def test_a_dotted_module_path_names_the_file(shop: IndexStore) -> None:
    query = "checkout is refused since shop.pricing changed"
    assert ranked(shop, query)[0] == "shop/pricing.py"
    assert ranked(shop, query, module=0.0)[0] != "shop/pricing.py"


def test_a_name_written_as_code_points_at_its_definition(shop: IndexStore) -> None:
    query = "Prices are rounded down: `round_price(2.5)` gives 2, the docs say 3. Coupon expiry date is fine."
    files = ranked(shop, query)
    assert files[0] == "shop/pricing.py"
    # The test and the doc repeat the name and the numbers; they rank below, but still rank.
    assert {"tests/test_pricing.py", "docs/pricing.md"} <= set(files[1:])


def test_tests_rank_below_the_code_they_test(shop: IndexStore) -> None:
    query = "the round price of a whole price is wrong"
    assert ranked(shop, query, secondary=0.0)[0] == "tests/test_pricing.py"  # the test says it all
    files = ranked(shop, query)
    assert files[0] == "shop/pricing.py" and "tests/test_pricing.py" in files[1:]


def test_each_file_once_with_its_best_chunk(shop: IndexStore) -> None:
    hits = rank_files(shop, "the price after the coupon expiry date", k=3, mode="fts")
    assert len(hits) == 3 and len({h.path for h in hits}) == 3
    coupons = next(h for h in hits if h.path == "shop/coupons.py")
    assert coupons.start_line > 1 and coupons.symbol, coupons
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_query_evidence_is_read_from_issue_text() -> None:
    text = ('see `Cart.total()` and shop.pricing\n```\n>>> cart.add("x", 1)\n```\n'
            '  File "C:\\venv\\shop\\cart.py", line 3\nthe price is wrong on README.md.')
    assert path_mentions(text) == ["C:/venv/shop/cart.py", "README.md"]
    assert "shop.pricing" in dotted_names(text)
    names = code_names(text)
    assert {"Cart", "total", "add"} <= set(names) and "wrong" not in names and "price" not in names


def test_a_question_about_files_is_shown_the_best_ranked_files_first(make_repo: Callable[..., Path]) -> None:
    root = make_repo(SHOP)
    settings = load_settings(root, {"embeddings": False})
    issue = "Coupon expiry date handling\n\nA coupon is still valid the day after its expiry date."
    asked = f"Which files would need to change to resolve this issue?\n\n{issue}"
    excerpts = [e for e in retrieval_excerpts(root, settings, asked, 700) if e.path != MAP_PATH]
    store = IndexStore.open(settings.index_path(root))
    best = rank_files(store, file_query(asked), k=2)
    assert [e.path for e in excerpts[:2]] == [hit.path for hit in best]  # each file's best chunk, in rank order
    assert (excerpts[0].start_line, excerpts[0].file_rank) == (best[0].start_line, 0)
    assert search(store, asked, k=1)[0].path != best[0].path  # chunk search alone would lead with another file
    # Any other question is answered from the search ranking alone, as before.
    other = retrieval_excerpts(root, settings, f"How is this handled?\n\n{issue}", 700)
    assert {e.file_rank for e in other} == {UNRANKED}


def test_a_question_on_its_first_line_goes_after_the_issue_it_asks_about() -> None:
    asked = "Which files would need to change to resolve this issue?\n\nTitle\nBody"
    assert file_query(asked) == "Title\nBody\n\nWhich files would need to change to resolve this issue?"
    assert file_query("Which files handle coupons?") == "Which files handle coupons?"
    assert file_query("Coupons expire early\nWhich files?") == "Coupons expire early\nWhich files?"


def test_search_files_on_the_command_line(shop: IndexStore, make_repo: Callable[..., Path]) -> None:
    root = make_repo(SHOP)
    update_index(root, load_settings(root))
    result = CliRunner().invoke(cli, ["search", "--files", "--json", "-k", "2", "-C", str(root), "--mode", "fts",
                                      "coupon expiry date handling"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    files = json.loads(result.output)["files"]
    assert [f["path"] for f in files][0] == "shop/coupons.py" and len(files) == 2
    assert {"path", "score", "start_line", "end_line", "symbol"} <= set(files[0])


def test_the_whole_file_control_ranks_source_files(make_repo: Callable[..., Path]) -> None:
    root = make_repo(SHOP, use_git=False)
    sources = [path for path in SHOP if path.endswith(".py") and not is_test_path(path)]
    assert "tests/test_pricing.py" not in sources and "shop/pricing.py" in sources
    windows = WindowBM25.whole_files(root, sources).search("round_price(2.5) is 2", 3)
    assert windows[0].path == "shop/pricing.py" and windows[0].start_line == 1
    assert windows[0].end_line == SHOP["shop/pricing.py"].count("\n")
