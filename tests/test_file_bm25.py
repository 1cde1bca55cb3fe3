"""file_bm25: BM25 over whole files built from a real index's chunks, as evidence for the file ranking."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from repochat.config import load_settings
from repochat.index.indexer import update_index
from repochat.index.store import IndexStore
from repochat.retrieve.file_bm25 import file_bm25

FILES = {
    # The query's three words, one in each function: no single chunk holds them all.
    "books/ledger.py": (
        "def open_invoice(customer):\n    return {'customer': customer, 'lines': []}\n\n\n"
        "def issue_refund(invoice, amount):\n    invoice['lines'].append(-amount)\n\n\n"
        "def post_to_ledger(book, entry):\n    book.append(entry)\n"),
    # One of the words many times.
    "books/invoices.py": (
        "def invoice_total(invoice):\n    return sum(invoice['lines'])\n\n\n"
        "def invoice_lines(invoice):\n    return invoice['lines']\n\n\n"
        "def invoice_customer(invoice):\n    return invoice['customer']\n"),
    "books/report.py": "def monthly(rows):\n    return [row for row in rows if row]\n",
}
QUERY = "A refund is not posted to the ledger when an invoice is closed"


def _index(root: Path) -> IndexStore:
    settings = load_settings(root)
    update_index(root, settings)
    return IndexStore.open(settings.index_path(root))


def test_a_file_holding_all_the_words_outranks_one_repeating_one(make_repo: Callable[..., Path]) -> None:
    scores = file_bm25(_index(make_repo(FILES)), QUERY)
    assert scores["books/ledger.py"] == 1.0  # relative to the best file
    assert 0 < scores["books/invoices.py"] < 1.0
    assert "books/report.py" not in scores  # none of the words


def test_only_known_files_are_scored(make_repo: Callable[..., Path]) -> None:
    scores = file_bm25(_index(make_repo(FILES)), QUERY, known={"books/invoices.py", "books/report.py"})
    assert set(scores) == {"books/invoices.py"} and scores["books/invoices.py"] == 1.0


def test_the_postings_follow_the_index(make_repo: Callable[..., Path]) -> None:
    root = make_repo(FILES)
    assert "books/refunds.py" not in file_bm25(_index(root), QUERY)
    (root / "books/refunds.py").write_text(
        "def refund_to_ledger(ledger, invoice):\n    '''Post a refund of a closed invoice to the ledger.'''\n"
        "    ledger.append(('refund', invoice))\n")
    assert file_bm25(_index(root), QUERY)["books/refunds.py"] == 1.0  # a new file, after the index is updated
