"""Lookups answered from a real index (tree-sitter, LanceDB on disk) of a real git repository, without the model."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Callable

import pytest

from repochat.config import Settings, load_settings
from repochat.index.indexer import update_index
from repochat.answer.lookup import lookup_answer, parse_lookup

PRICES = (
    "def apply_discount(amount, rate):\n"  # 1
    "    return amount * (1 - rate)\n"  # 2
    "\n"
    "\n"
    "def tax(amount):\n"  # 5
    "    return apply_discount(amount, -0.2)\n"  # 6
)
CART = (
    "from shop.prices import apply_discount\n"  # 1
    "\n"
    "\n"
    "class Cart:\n"  # 4
    "    def __init__(self):\n"  # 5
    "        self.items = []\n"  # 6
    "\n"
    "    def total(self):\n"  # 8
    "        subtotal = sum(item.price for item in self.items)\n"  # 9
    "        return apply_discount(subtotal, 0.1)\n"  # 10
    "\n"
    "\n"
    "def checkout(cart):\n"  # 13
    "    return round(cart.total(), 2)\n"  # 14
)
ORDERS = (
    "class Order:\n"  # 1
    "    def total(self):\n"  # 2
    "        return 0\n"  # 3
)
FILES = {"shop/prices.py": PRICES, "shop/cart.py": CART, "shop/orders.py": ORDERS, "README.md": "# Shop\n"}


@pytest.fixture
def indexed(make_repo: Callable[..., Path]) -> tuple[Path, Settings]:
    root = make_repo(FILES)
    settings = load_settings(root)
    update_index(root, settings)
    return root, settings


def cited(result) -> set[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return {(c["path"], c["start"], c["end"]) for c in result.citations}


def ask_coverage_keys() -> set[str]:
    """The keys ask's own coverage has (read from answer/ask.py, so a key added there is expected here too)."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "repochat" / "answer" / "ask.py").read_text(encoding="utf-8"))
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_coverage")
    returned = next(n.value for n in ast.walk(function) if isinstance(n, ast.Return))
    assert isinstance(returned, ast.Dict)
    return {k.value for k in returned.keys if isinstance(k, ast.Constant)} | {"sources_tokens"}


def test_where_is_it_defined_cites_the_definition_with_its_signature(indexed: tuple[Path, Settings]) -> None:
    root, settings = indexed
    index_files = {p: p.stat().st_mtime_ns for p in (root / ".repochat").rglob("*")}
    result = lookup_answer(root, "Where is apply_discount defined?", settings)
    assert result is not None
    assert "shop/prices.py:1-2" in result.answer and "`def apply_discount(amount, rate):`" in result.answer
    assert result.references == [{"path": "shop/prices.py", "start": 1, "end": 2, "symbol": "apply_discount"}]
    assert cited(result) == {("shop/prices.py", 1, 2), ("shop/prices.py", 6, 6), ("shop/cart.py", 1, 1),
                             ("shop/cart.py", 10, 10)}
    assert all(c["valid"] for c in result.citations)
    assert result.coverage["mode"] == "lookup" and result.coverage["files_retrieved"] == 2
    assert ask_coverage_keys() <= set(result.coverage)
    # read-only: the lookup left every file of the index as it was
    assert {p: p.stat().st_mtime_ns for p in (root / ".repochat").rglob("*")} == index_files


def test_who_calls_lists_the_call_sites_by_file_and_caller(indexed: tuple[Path, Settings]) -> None:
    root, settings = indexed
    result = lookup_answer(root, "who calls apply_discount?", settings)
    assert result is not None
    # the import on cart.py:1 is a use, not a call
    assert cited(result) == {("shop/prices.py", 1, 2), ("shop/cart.py", 10, 10), ("shop/prices.py", 6, 6)}
    assert "- `shop/cart.py`: `Cart.total` (shop/cart.py:10)" in result.answer
    assert "- `shop/prices.py`: `tax` (shop/prices.py:6)" in result.answer
    assert "2 places in 2 files" in result.answer
    assert all(c["valid"] for c in result.citations)


def test_what_does_it_call_lists_the_calls_inside_the_definition(indexed: tuple[Path, Settings]) -> None:
    root, settings = indexed
    result = lookup_answer(root, "What does Cart.total call?", settings)
    assert result is not None
    assert result.references == [{"path": "shop/cart.py", "start": 8, "end": 10, "symbol": "Cart.total"}]
    assert "`sum` (shop/cart.py:9)" in result.answer and "`apply_discount` (shop/cart.py:10)" in result.answer
    assert "checkout" not in result.answer  # a call of total, not a call made by it


def test_an_ambiguous_name_lists_every_definition(indexed: tuple[Path, Settings]) -> None:
    root, settings = indexed
    result = lookup_answer(root, "where is the total method defined", settings)
    assert result is not None
    assert sorted((r["path"], r["start"], r["end"], r["symbol"]) for r in result.references) == [
        ("shop/cart.py", 8, 10, "Cart.total"), ("shop/orders.py", 2, 3, "Order.total")]
    assert "2 definitions" in result.answer
    qualified = lookup_answer(root, "where is Order.total defined?", settings)
    assert qualified is not None and [r["symbol"] for r in qualified.references] == ["Order.total"]


@pytest.mark.parametrize("question, heading, expected", [
    ("apply_discountはどこで定義されていますか？", "の定義", ("shop/prices.py", 1, 2)),
    ("apply_discountを呼び出しているのは？", "呼び出し元（2 ファイル、2 箇所）", ("shop/cart.py", 10, 10)),
    ("Cart.totalはどこで使われていますか", "使用箇所（1 ファイル、1 箇所）", ("shop/cart.py", 14, 14)),
    ("関数 checkout は何を呼び出していますか", "が呼び出しているもの", ("shop/cart.py", 14, 14)),
])
def test_japanese_questions_are_answered_in_japanese(indexed: tuple[Path, Settings], question: str, heading: str,
                                                     expected: tuple[str, int, int]) -> None:
    root, settings = indexed
    result = lookup_answer(root, question, settings)
    assert result is not None
    assert heading in result.answer and expected in cited(result)
    assert all(c["valid"] for c in result.citations)
    assert "Definition" not in result.answer and "Used in" not in result.answer


def test_lines_come_from_the_file_as_it_is_now(indexed: tuple[Path, Settings]) -> None:
    root, settings = indexed
    (root / "shop" / "prices.py").write_text("import math\n\n" + PRICES, encoding="utf-8")  # index not updated
    result = lookup_answer(root, "who calls apply_discount", settings)
    assert result is not None
    assert ("shop/prices.py", 3, 4) in cited(result)  # the definition where it is now
    assert ("shop/prices.py", 6, 6) not in cited(result)  # the indexed call line now holds something else
    assert ("shop/cart.py", 10, 10) in cited(result)


def test_unknown_names_other_questions_and_a_missing_index_give_none(indexed: tuple[Path, Settings],
                                                                     make_repo: Callable[..., Path]) -> None:
    root, settings = indexed
    assert lookup_answer(root, "Where is compute_shipping defined?", settings) is None
    assert lookup_answer(root, "How is the discount applied to the cart total?", settings) is None
    assert lookup_answer(root, "Which function applies a discount to an amount?", settings) is None
    bare = make_repo(FILES)
    assert lookup_answer(bare, "Where is apply_discount defined?", load_settings(bare)) is None


@pytest.mark.parametrize("question, intent, name", [
    ("Where is backoff_delay defined?", "definition", "backoff_delay"),
    ("where's `Queue.requeue` declared", "definition", "Queue.requeue"),
    ("In which file is the class ResultStore defined?", "definition", "ResultStore"),
    ("Show me the definition of pop_ready()", "definition", "pop_ready"),
    ("which file defines Worker", "definition", "Worker"),
    ("Who calls backoff_delay()?", "callers", "backoff_delay"),
    ("what calls the function requeue", "callers", "requeue"),
    ("Where is Worker._failed called from?", "callers", "Worker._failed"),
    ("find all callers of enqueue", "callers", "enqueue"),
    ("Where is Job used?", "usages", "Job"),
    ("Which files import ResultStore?", "usages", "ResultStore"),
    ("usages of MAX_RETRIES", "usages", "MAX_RETRIES"),
    ("What does Worker._failed call?", "callees", "Worker._failed"),
    ("which functions does run_forever call", "callees", "run_forever"),
    ("Can you tell me where std::vec::Vec is defined?", "definition", "std.vec.Vec"),
    ("backoff_delayはどこで定義されていますか", "definition", "backoff_delay"),
    ("Queue.requeueの定義はどこですか？", "definition", "Queue.requeue"),
    ("「ResultStore」クラスはどこにありますか", "definition", "ResultStore"),
    ("backoff_delayを呼び出しているのはどこですか", "callers", "backoff_delay"),
    ("requeueはどこから呼ばれていますか", "callers", "requeue"),
    ("enqueueの呼び出し元は？", "callers", "enqueue"),
    ("Jobはどこで使われていますか？", "usages", "Job"),
    ("ResultStoreの使用箇所", "usages", "ResultStore"),
    ("Worker._failedは何を呼び出していますか", "callees", "Worker._failed"),
    ("run_foreverの呼び出し先は？", "callees", "run_forever"),
])
def test_lookup_phrasings(question: str, intent: str, name: str) -> None:
    asked = parse_lookup(question)
    assert asked is not None and (asked.intent, asked.name) == (intent, name)
    assert asked.language == ("en" if question.isascii() else "ja")


@pytest.mark.parametrize("question", [
    "How does the worker retry a failed job?",
    "Where is backoff_delay defined and why does it double?",
    "Which function or method does the following: 'Pop the next job that is due'?",
    "where is it defined?",
    "Where are results stored?",
    "ワーカーはどのようにジョブを再試行しますか？",
    "",
])
def test_other_questions_are_not_lookups(question: str) -> None:
    assert parse_lookup(question) is None


def test_long_lists_are_capped_and_the_rest_counted(indexed: tuple[Path, Settings],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import repochat.answer.lookup as lookup

    root, settings = indexed
    monkeypatch.setattr(lookup, "MAX_SITES", 1)
    monkeypatch.setattr(lookup, "MAX_DEFINITION_FILES", 1)
    callers = lookup_answer(root, "who calls apply_discount?", settings)
    assert callers is not None
    assert "Called from 2 places in 2 files:" in callers.answer
    assert "- and 1 place more in 1 file" in callers.answer
    assert cited(callers) == {("shop/prices.py", 1, 2), ("shop/cart.py", 10, 10)}
    totals = lookup_answer(root, "where is total defined?", settings)
    assert totals is not None
    assert "`total` has 2 definitions:" in totals.answer and "- and 1 more definition\n" in totals.answer
    assert [r["symbol"] for r in totals.references] == ["Cart.total"]  # the file parsed: shop/cart.py sorts first
