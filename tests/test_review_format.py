"""Review output and its rules: exit codes, thresholds, SARIF 2.1.0 shape, the findings grammar (checked token by
token with llama.cpp's grammar sampler over the real default model's vocabulary), and salvaging cut-off output."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from engine_support import default_model_path
from repochat.engine.llama import LlamaModel
from repochat.engine.grammar import GrammarSampler
from repochat.errors import ConfigError
from repochat.review.report import Finding, ReviewReport, check_fail_on, exit_code, reaches, text_lines, to_sarif
from repochat.review.prompt import findings_grammar, parse_findings

WARNING = Finding("warning", "a.py", 3, "maybe wrong")
ERROR = Finding("error", "b/c.py", 7, "index out of range", "use len(x) - 1")


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory: pytest.TempPathFactory) -> LlamaModel:
    model = LlamaModel(default_model_path(tmp_path_factory), vocab_only=True)
    yield model
    model.close()


def test_thresholds_and_exit_codes() -> None:
    assert reaches("error", "warning") and reaches("warning", "warning") and not reaches("info", "warning")
    assert not reaches("error", "never")
    report = ReviewReport("staged", findings=[WARNING])
    assert exit_code(report, "error", strict=False) == 0
    assert exit_code(report, "warning", strict=False) == 1
    assert exit_code(ReviewReport("staged", findings=[ERROR]), "error", strict=False) == 1
    skipped = ReviewReport("staged", notice="model unavailable: not installed")
    assert exit_code(skipped, "error", strict=False) == 0
    assert exit_code(skipped, "error", strict=True) == 2
    with pytest.raises(ConfigError):
        check_fail_on("fatal")


def test_text_output_names_every_finding_and_left_out_file() -> None:
    report = ReviewReport("staged", findings=[WARNING, ERROR], reviewed=["a.py", "b/c.py"],
                          not_reviewed={"logo.png": "binary"}, seconds=1.5)
    lines = [text for _style, text in text_lines(report, "error")]
    assert lines[0] == "b/c.py:7: error: index out of range"  # most severe first
    assert "    suggestion: use len(x) - 1" in lines
    assert "not reviewed: logo.png (binary)" in lines
    assert "1 at or above 'error'" in lines[-1] and "1.5s" in lines[-1]


def test_sarif_2_1_0_shape(tmp_path: Path) -> None:
    info = Finding("info", "b/c.py", 9, "could be shorter")
    report = ReviewReport("staged", findings=[WARNING, ERROR, info], reviewed=["b/c.py"],
                          not_reviewed={"logo.png": "binary"}, seconds=3.456, stats={"mode": "whole", "restored_tokens": 2048, "prompt_tokens": 9})
    sarif = to_sarif(report, "0.1.0", tmp_path)
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "repochat"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    levels = [r["level"] for r in run["results"]]
    assert levels == ["warning", "error", "note"]  # SARIF levels: none, note, warning, error
    location = run["results"][1]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "b/c.py", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 7}}
    assert run["results"][1]["properties"]["suggestion"] == "use len(x) - 1"
    assert run["properties"] == {"target": "staged", "reviewed": ["b/c.py"], "notReviewed": {"logo.png": "binary"},
                                 "seconds": 3.46, "mode": "whole", "restored_tokens": 2048}
    _sarif_validator().validate(json.loads(json.dumps(sarif)))


def test_sarif_of_a_skipped_review_is_valid(tmp_path: Path) -> None:
    skipped = ReviewReport("HEAD~1..HEAD", notice="model unavailable: not installed")
    sarif = to_sarif(skipped, "0.1.0", tmp_path)
    _sarif_validator().validate(sarif)
    invocation = sarif["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == "model unavailable: not installed"


def _sarif_validator() -> jsonschema.Draft4Validator:
    """The OASIS SARIF 2.1.0 schema (errata01, Schemata/sarif-schema-2.1.0.json of the spec), kept in tests/data so
    the check needs no network. It closes every object (additionalProperties: false) and enumerates levels."""
    schema = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_truncated_output_keeps_complete_findings() -> None:
    whole = ('{"findings": [{"path": "a.py", "line": 3, "severity": "warning", "message": "m1", "suggestion": ""}, '
             '{"path": "a.py", "line": 4, "severity": "error", "message": "cut here')
    assert parse_findings(whole) == [Finding("warning", "a.py", 3, "m1", "")]
    assert parse_findings('{"findings": [{"path": "a.py", "li') == []


def _follow(sampler: GrammarSampler, model: LlamaModel, text: str) -> str:
    """Feed text token by token as if the model wanted exactly it; return what the grammar let through."""
    accepted = []
    for token in model.tokenize(text):
        logits = np.zeros(model.n_vocab, dtype=np.float32)
        logits[token] = 10.0
        chosen = sampler.choose(logits)
        if chosen != token:
            break
        sampler.accept(chosen)
        accepted.append(model.piece(chosen))
    return b"".join(accepted).decode("utf-8", "replace")


def test_grammar_allows_only_reviewed_paths_and_changed_lines(vocabulary: LlamaModel) -> None:
    grammar = findings_grammar({"src/app.py": [12, 13], "lib/x.py": [4]})
    valid = ('{"findings": [{"path": "src/app.py", "line": 13, "severity": "error", "message": "off by one", '
             '"suggestion": "use < instead of <="}]}')
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, valid) == valid
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, '{"findings": []}') == '{"findings": []}'
    wrong_path = '{"findings": [{"path": "other.py", "line": 13'
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, wrong_path) != wrong_path
    wrong_line = '{"findings": [{"path": "lib/x.py", "line": 12,'
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, wrong_line) != wrong_line
    bad_severity = '{"findings": [{"path": "lib/x.py", "line": 4, "severity": "fatal"'
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, bad_severity) != bad_severity


def test_grammar_without_citable_lines_allows_only_no_findings(vocabulary: LlamaModel) -> None:
    grammar = findings_grammar({"gone.py": []})
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, '{"findings": []}') == '{"findings": []}'
    started = '{"findings": [{'
    assert _follow(GrammarSampler(vocabulary, grammar), vocabulary, started) != started
