"""The listwise pick (repochat.answer.pick): which questions get one, what it may choose, and real answers that start with it.

The question-kind table is pure logic; the answers come from the real default model over a real git repository and a
real full-text index, asked at --effort low so the candidates are retrieved excerpts.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from engine_support import engine_settings, make_repo
from repochat.answer.ask import ask
from repochat.engine.grammar import GrammarSampler
from repochat.engine.session import Engine
from repochat.index.indexer import update_index
from repochat.index.store import IndexStore
from repochat.answer.pick import WORDINGS, Choice, Pick, definition_choices, file_choices, pick_for, pick_grammar
from repochat.answer.prompt import question_language
from repochat.retrieve.questions import definition_query, file_query, question_kind
from repochat.retrieve.excerpts import MAP_PATH, Excerpt
from repochat.retrieve.files import rank_files
from repochat.retrieve.search import search
from repochat.answer.translate import search_query

FILES = {
    "shop/pricing.py": (
        '"""Prices."""\n\n\ndef apply_discount(price: float, percent: float) -> float:\n'
        "    return round(price * (1 - percent / 100), 2)\n\n\n"
        "def add_tax(price: float, rate: float = 0.2) -> float:\n    return round(price * (1 + rate), 2)\n"),
    "shop/cart.py": (
        '"""The shopping cart."""\n\nfrom .pricing import add_tax\n\n\nclass Cart:\n'
        "    def __init__(self):\n        self.items = []\n\n"
        "    def add(self, name: str, price: float) -> None:\n        self.items.append((name, price))\n\n"
        "    def total(self) -> float:\n        return add_tax(sum(price for _name, price in self.items))\n"),
    "shop/shipping.py": (
        '"""Shipping."""\n\n\ndef shipping_cost(weight_kg: float) -> float:\n'
        "    return 4.99 if weight_kg < 2 else 4.99 + (weight_kg - 2) * 1.5\n"),
    "README.md": "# shop\n\nA tiny shop: a cart, prices with discounts and tax, shipping by weight.\n",
}


@pytest.mark.parametrize("question, kind", [
    ("Which function or method does the following: 'Return the price after tax'? Name it and its file.",
     "definition"),
    ("What class holds the items of a cart?", "definition"),
    ("Which files would need to change to resolve this issue? Tax is applied twice.", "files"),
    ("In which file is the cart defined?", "file"),
    ("Which file defines the cart?", "file"),
    ("税金を加える関数はどれですか？", "definition"),
    ("どのクラスがカートの商品を保持しますか？", "definition"),
    ("この問題を解決するにはどのファイルを変更する必要がありますか？", "files"),
    ("How is shipping priced?", None),
    ("What type does total return?", None),
])
def test_question_kind_follows_the_wording(question: str, kind: str | None) -> None:
    assert question_kind(question) == kind


def test_a_definition_question_is_searched_by_the_description_it_quotes() -> None:
    needle = "Which function or method does the following: 'Return the price after tax, if it's due'? Name it."
    assert definition_query(needle) == "Return the price after tax, if it's due"
    assert definition_query("Which class does “hold the items of a shopping cart”?") == \
        "hold the items of a shopping cart"
    for unchanged in ("Which function raises 'out of stock'?",  # a short quote: searched with the question
                      "Which files would need to change? 'Tax is applied twice to the cart total'",  # not a definition
                      "Which function adds the tax?", "It's the cart's total: which method computes it?"):
        assert definition_query(unchanged) == unchanged


def test_japanese_is_told_apart_from_english() -> None:
    assert question_language("カートの合計は？") == "ja" and question_language("What is the cart total?") == "en"


def test_choices_are_the_definitions_and_files_shown_best_search_rank_first() -> None:
    candidates = [Excerpt(MAP_PATH, 1, 3, "map", kind="map"),
              Excerpt("tests/test_cart.py", 1, 5, "def test_cart_total", "test_cart_total", "function"),
              Excerpt("shop/cart.py", 6, 15, "class Cart: ...", "Cart", "class", rank=2),
              Excerpt("README.md", 1, 3, "# shop", "", "text", rank=0),
              Excerpt("shop/pricing.py", 8, 9, "def add_tax", "add_tax", "function", rank=1)]
    english = [c.text for c in definition_choices(candidates, WORDINGS["en"])]
    assert english == ["`add_tax` in shop/pricing.py", "`Cart` in shop/cart.py",
                       "`test_cart_total` in tests/test_cart.py"]  # named by the question only: after the ranked
    assert [c.path for c in file_choices(candidates, WORDINGS["en"])] == [
        "README.md", "shop/pricing.py", "shop/cart.py"]  # three at most: the map is no file
    assert definition_choices(candidates, WORDINGS["ja"])[0].text == "`add_tax`（shop/pricing.py）"


def test_files_the_file_ranking_placed_lead_the_file_choices() -> None:
    candidates = [Excerpt("README.md", 1, 3, "# shop", "", "text", rank=0),
              Excerpt("shop/pricing.py", 8, 9, "def add_tax", "add_tax", "function", rank=1, file_rank=1),
              Excerpt("shop/cart.py", 6, 15, "class Cart: ...", "Cart", "class", rank=2, file_rank=0)]
    assert [c.path for c in file_choices(candidates, WORDINGS["en"])] == ["shop/cart.py", "shop/pricing.py", "README.md"]
    # A definition is still picked by its chunk's search rank.
    assert definition_choices(candidates, WORDINGS["en"])[0].text == "`add_tax` in shop/pricing.py"


def test_a_which_files_answer_names_the_three_best_ranked_files_as_fixed_text() -> None:
    candidates = [Excerpt(f"shop/{name}.py", 1, 2, "x", "", "function", rank=0, file_rank=place)
              for place, name in enumerate(("cart", "pricing", "shipping", "tax"))]
    pick = pick_for("Which files would need to change to resolve this issue?", candidates)
    assert pick is not None and pick.fixed == 3
    grammar = pick_grammar(pick)
    # One literal, the ranking's order, then the connector: the model chooses none of the three, and adds no fourth.
    assert grammar == 'root ::= "`shop/cart.py`, `shop/pricing.py`, `shop/shipping.py`. "\n', grammar
    one = pick_for("In which file is the cart defined?", candidates)
    assert one is not None and one.fixed == 1 and "pricing" not in pick_grammar(one)


@pytest.fixture(scope="module")
def shop(engine: Engine, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("shop")
    repo = make_repo(base / "repo", FILES)
    settings = engine_settings(base / "cache", model=str(engine.model_path), threads=1, embeddings=False,
                               index_dir=str(base / "index"), max_answer_tokens=40)
    return repo, settings


def test_llama_cpp_accepts_the_pick_grammar(engine: Engine) -> None:
    choices = definition_choices([Excerpt("a b/c.py", 1, 2, "x", 'say "hi"', "function"),
                                  Excerpt("d.py", 1, 2, "y", "run", "method")], WORDINGS["en"])
    GrammarSampler(engine.model, pick_grammar(Pick(choices, ", which", 2))).close()  # raises if it does not parse
    files = [Choice(f"`shop/{name}.py`", f"shop/{name}.py") for name in ("cart", "pricing", "shipping", "tax")]
    GrammarSampler(engine.model, pick_grammar(Pick(files, ". ", 3))).close()


def test_which_function_answer_starts_with_the_best_ranked_definition(engine: Engine, shop, tmp_path) -> None:
    """The pick is streamed before the context is prefilled (it comes from the index); the model's words follow it,
    streamed after it, and the answer holds both, exactly as streamed."""
    repo, settings = shop
    settings = dataclasses.replace(settings, cache_dir=str(tmp_path / "cache"))  # no KV cached: this ask prefills
    events: list[tuple[str, str]] = []
    engine.close_context()
    result = ask(repo, "Which function computes the price after a percentage discount?", settings, engine=engine,
                 effort="low", on_text=lambda text: events.append(("text", text)),
                 on_progress=lambda stage, done, total: events.append(("progress", stage)))
    assert result.coverage["mode"] == "retrieval"
    first = re.match(r"`(\w+)` in (\S+),", result.answer)
    assert first, result.answer
    assert first.group(1) == "apply_discount" and first.group(2) == "shop/pricing.py", result.answer
    assert result.references and result.references[0]["symbol"] == "apply_discount"
    prefill = next(i for i, (kind, stage) in enumerate(events) if kind == "progress" and stage == "prefill")
    assert events[0][0] == "text" and events[0][1].startswith(first.group(0)) and 0 < prefill, events[:3]
    streamed = "".join(text for kind, text in events if kind == "text")
    assert result.answer.startswith(streamed) and len(streamed) > len(first.group(0)), events
    assert result.coverage["ttft_s"] < result.coverage["model_ttft_s"]


def test_which_files_answer_names_files_that_were_retrieved(engine: Engine, shop) -> None:
    repo, settings = shop
    result = ask(repo, "Which files would need to change to charge shipping by volume instead of weight?", settings,
                 engine=engine, effort="low")
    named = re.findall(r"`([^`]+)`", result.answer.split(". ", 1)[0])
    assert 1 <= len(named) <= 3 and named[0] == "shop/shipping.py", result.answer
    assert all(path in FILES for path in named)


# Cart.total, which the issue names, is defined in shop/cart.py; the chunks that read most like the issue are the
# discount code in shop/pricing.py.
DISCOUNT_ISSUE = ("Which files would need to change to resolve this issue?\n\n"
                  "Discounts are not applied to the cart total\n\n"
                  "Cart.total ignores a discount percent; the price after a discount should be taxed.")


def test_which_files_answer_leads_with_the_best_ranked_file(engine: Engine, shop) -> None:
    repo, settings = shop
    result = ask(repo, DISCOUNT_ISSUE, settings, engine=engine, effort="low")
    store = IndexStore.open(settings.index_path(repo))
    ranking = [hit.path for hit in rank_files(store, file_query(DISCOUNT_ISSUE), k=3)]
    assert ranking[0] == "shop/cart.py" and search(store, DISCOUNT_ISSUE, k=1)[0].path != ranking[0]  # they differ
    named = re.findall(r"`([^`]+)`", result.answer.split(". ", 1)[0])
    assert named == ranking, result.answer  # the three best-ranked files, in order, each once
    assert result.citations and all(c["valid"] for c in result.citations), result.answer


def test_a_japanese_question_is_answered_in_japanese(engine: Engine, shop) -> None:
    repo, settings = shop
    result = ask(repo, "カートの合計はどのように計算されますか？", settings, engine=engine, effort="low")
    body = result.answer.split("Sources:", 1)[0]
    assert re.search(r"[\u3040-\u30ff]", body), result.answer  # kana: Japanese, not English or Chinese


def test_a_japanese_question_is_searched_in_english_and_picks_the_right_function(engine: Engine, shop) -> None:
    repo, settings = shop
    assert search_query(engine, "What is in the cart?") == "What is in the cart?"  # English: used as asked
    english = search_query(engine, "割引後の価格を計算する関数はどれですか？")
    assert re.search(r"discount", english, re.I) and not re.search(r"[\u3040-\u30ff]", english), english
    result = ask(repo, "割引後の価格を計算する関数はどれですか？", settings, engine=engine, effort="low")
    assert result.answer.startswith("`apply_discount`（shop/pricing.py）は、"), result.answer


def test_a_which_function_answer_with_the_whole_repository_starts_with_the_index_pick(engine: Engine, shop,
                                                                                      tmp_path) -> None:
    """--effort high puts every file in the context; the answer still starts with search's best definition, shown
    before the repository is prefilled. With the pick off, nothing is shown before the prefill."""
    repo, settings = shop
    update_index(repo, settings)  # whole-repository mode uses an index that exists, and builds none
    question = "Which function computes the price after a percentage discount?"

    def asked(**changes: object) -> tuple[dict, list[str]]:
        events: list[str] = []
        engine.close_context()
        result = ask(repo, question, dataclasses.replace(settings, cache_dir=str(tmp_path / str(changes)), **changes),
                     engine=engine, effort="high", on_text=events.append,
                     on_progress=lambda stage, done, total: events.append(f"<{stage}>"))
        assert result.coverage["mode"] == "whole" and result.coverage["files_in_context"] == len(FILES)
        return result.as_dict(), events

    result, events = asked()
    assert search(IndexStore.open(settings.index_path(repo)), question, k=1)[0].symbol == "apply_discount"
    assert result["answer"].startswith("`apply_discount` in shop/pricing.py, which"), result["answer"]
    assert events[0] == "`apply_discount` in shop/pricing.py, which" and "<pieces>" in events[1:], events[:4]
    _unpicked, events = asked(pick=False)
    assert events[0] == "<pieces>", events[:4]
