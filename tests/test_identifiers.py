"""Identifier splitting and the code-words field (pure text functions)."""

from __future__ import annotations

from repochat.index.identifiers import code_words, split_identifier, without_doc


def test_split_identifier_handles_camel_snake_and_acronyms() -> None:
    assert split_identifier("parseHTTPRequest") == ("parse", "http", "request")
    assert split_identifier("parse_http_request") == ("parse", "http", "request")
    assert split_identifier("retry") == ("retry",)


def test_code_words_are_lowercase_parts_of_every_identifier() -> None:
    assert code_words("self.retry_count += parseHTTP(x) + 'a string'") == "self retry count parse http x a string"


def test_without_doc_drops_a_python_docstring_but_keeps_the_code() -> None:
    text = 'def f(x):\n    """Move the pointer back.\n\n    Then read again.\n    """\n    return x.seek(0)'
    kept = without_doc(text, "Move the pointer back.\n\nThen read again.")
    assert "Move" not in kept and "read again" not in kept
    assert kept.splitlines()[0] == "def f(x):" and kept.splitlines()[-1] == "    return x.seek(0)"


def test_without_doc_drops_leading_doc_comments() -> None:
    text = "/// Parses a number.\n/// Fails on overflow.\nfn parse(s: &str) -> u64 {\n    s.parse().unwrap()\n}"
    kept = without_doc(text, "Parses a number.\nFails on overflow.")
    assert kept.splitlines() == ["fn parse(s: &str) -> u64 {", "    s.parse().unwrap()", "}"]


def test_without_doc_keeps_everything_when_there_is_no_doc() -> None:
    assert without_doc("a\nb", "") == "a\nb"
