"""A review's model part on a remote engine (engine/remote.py): the review prompt as text, the verdict and the
findings constrained by the server (a GBNF grammar on llama.cpp servers, a JSON schema elsewhere).

The local review compares the logits of words for buggy and correct after "Verdict: the change is "; a chat API has
no logits to compare, so the verdict is a one-word answer the grammar allows only those words for (greedy, so the
likelier of them). Findings follow only on a buggy verdict, as locally; the second request shares the review
prompt with the first, so the server's prefix cache prefills only its last line. Reviews take the retrieval layout
(the change and its neighbours): a server's whole-repository prefix is ask's, and the reviewed side differs from it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..config import Settings
from ..engine.grammar import gbnf_literal
from ..engine.remote import ContextTooLong, RemoteEngine
from .context import ReviewContext
from .report import SEVERITIES, Finding
from .prompt import BUGGY_WORDS, CORRECT_WORDS, MAX_FINDINGS, MAX_MESSAGE_CHARS, MAX_SUGGESTION_CHARS, \
    SYSTEM, findings_grammar, parse_findings

VERDICT_QUESTION = "\n\nIs the change correct or buggy? Answer with one word."
_BUGGY = tuple(word.strip() for word in BUGGY_WORDS)
_WORDS = _BUGGY + tuple(word.strip() for word in CORRECT_WORDS)


def remote_findings(context: ReviewContext, review_text: str, settings: Settings,
                    max_tokens: int) -> tuple[list[Finding], dict[str, Any]]:
    """The findings the server gives for the review prompt, and the report's stats."""
    began = time.monotonic()
    with RemoteEngine(settings.engine, settings) as engine:
        review = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": review_text}]
        needed = engine.chat_tokens(review) + engine.count_tokens(VERDICT_QUESTION) + max_tokens
        if needed > engine.context_limit():
            raise ContextTooLong(f"the review needs {needed:,} tokens, the engine server's context is "
                                 f"{engine.context_limit():,}")
        asked = [review[0], {"role": "user", "content": review_text + VERDICT_QUESTION}]
        verdict = _word(engine.constrained(asked, verdict_grammar(), verdict_schema(), 4).text)
        output = None
        if verdict in _BUGGY:
            locations = context.locations()
            output = engine.constrained(review, findings_grammar(locations, at_least_one=True),
                                        findings_schema(locations), max_tokens)
        stats = {"mode": "retrieval", "engine": engine.url, "server": engine.server, "model": engine.model,
                 "verdict": verdict, "prompt_tokens": needed - max_tokens,
                 "server_cached_tokens": output.cached_tokens if output else None,
                 "output_tokens": output.tokens if output else 0,
                 "stopped": output.stopped if output else "verdict",
                 "model_seconds": round(time.monotonic() - began, 2), "callers": len(context.callers),
                 "callees": len(context.callees), "notes": context.notes}
    return (parse_findings(output.text) if output else []), stats


def verdict_grammar() -> str:
    return "root ::= " + " | ".join(gbnf_literal(word) for word in _WORDS) + "\n"


def verdict_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"verdict": {"enum": list(_WORDS)}}, "required": ["verdict"],
            "additionalProperties": False}


def _word(text: str) -> str:
    """The verdict word, from the grammar's bare word or the schema's object."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return str(json.loads(text).get("verdict", ""))
        except (ValueError, AttributeError):
            return ""
    return text


def findings_schema(locations: dict[str, list[int]]) -> dict[str, Any]:
    """The findings object as a JSON schema, for servers without GBNF: each finding's path one of the reviewed
    files and its line one of the lines shown for that file (what findings_grammar says)."""
    def finding(path: str, lines: list[int]) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False,
                "required": ["path", "line", "severity", "message", "suggestion"],
                "properties": {"path": {"const": path}, "line": {"enum": lines}, "severity": {"enum": list(SEVERITIES)},
                               "message": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS},
                               "suggestion": {"type": "string", "maxLength": MAX_SUGGESTION_CHARS}}}

    items = [finding(path, lines) for path, lines in locations.items() if lines]
    findings = {"type": "array", "minItems": 1, "maxItems": MAX_FINDINGS, "items": {"anyOf": items}} if items \
        else {"type": "array", "maxItems": 0}
    return {"type": "object", "properties": {"findings": findings}, "required": ["findings"],
            "additionalProperties": False}

