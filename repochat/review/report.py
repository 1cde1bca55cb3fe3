"""Review results and their three forms: text for a terminal, a JSON object, and SARIF 2.1.0 for code-scanning tools
and editors. Also the exit-code rule (0 / 1 / 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SEVERITIES = ("error", "warning", "info")  # most severe first
FAIL_LEVELS = (*SEVERITIES, "never")
EXIT_OK, EXIT_FINDINGS, EXIT_NOT_RUN = 0, 1, 2
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


@dataclass(frozen=True)
class Finding:
    severity: str  # error, warning or info
    path: str
    line: int
    message: str
    suggestion: str = ""


@dataclass
class ReviewReport:
    target: str  # what was reviewed: "staged", "worktree" or a range
    findings: list[Finding] = field(default_factory=list)
    reviewed: list[str] = field(default_factory=list)
    not_reviewed: dict[str, str] = field(default_factory=dict)  # path -> reason (binary, deleted, too large, ...)
    dropped: int = 0  # findings the model made outside the reviewed files
    notice: str = ""  # why the review did not run (model or index unavailable), "" when it ran
    notes: list[str] = field(default_factory=list)  # what the user should know though it ran (an index was built)
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)  # prompt tokens, generated tokens, model, ...

    @property
    def ran(self) -> bool:
        return not self.notice

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ran": self.ran}


def check_fail_on(level: str) -> str:
    if level not in FAIL_LEVELS:
        raise ConfigError(f"fail_on must be one of {', '.join(FAIL_LEVELS)}, not {level!r}")
    return level


def reaches(severity: str, fail_on: str) -> bool:
    """True when a finding of ``severity`` is at or above the ``fail_on`` threshold."""
    if fail_on == "never":
        return False
    return SEVERITIES.index(severity) <= SEVERITIES.index(fail_on)


def exit_code(report: ReviewReport, fail_on: str, strict: bool) -> int:
    """0: nothing reaches fail_on; 1: something does; 2: the review could not run and --strict asks to block."""
    if not report.ran:
        return EXIT_NOT_RUN if strict else EXIT_OK
    return EXIT_FINDINGS if any(reaches(f.severity, fail_on) for f in report.findings) else EXIT_OK


# --- text ---------------------------------------------------------------------------------------------------------
def text_lines(report: ReviewReport, fail_on: str) -> list[tuple[str, str]]:
    """(rich style, plain text) pairs; the caller prints them with or without colour."""
    out = [("yellow", f"repochat review: {note}") for note in report.notes]
    if not report.ran:
        return [*out, ("yellow", f"repochat review: skipped: {report.notice}")]
    for finding in sorted(report.findings, key=lambda f: (SEVERITIES.index(f.severity), f.path, f.line)):
        out.append((_STYLE[finding.severity], f"{finding.path}:{finding.line}: {finding.severity}: {finding.message}"))
        if finding.suggestion:
            out.append(("dim", f"    suggestion: {finding.suggestion}"))
    for path, reason in sorted(report.not_reviewed.items()):
        out.append(("dim", f"not reviewed: {path} ({reason})"))
    if report.stats.get("mode"):
        out.append(("dim", context_line(report.stats)))
    blocking = sum(1 for f in report.findings if reaches(f.severity, fail_on))
    summary = (f"repochat review ({report.target}): {len(report.findings)} finding(s), {blocking} at or above "
               f"'{fail_on}', {len(report.reviewed)} file(s) reviewed in {report.seconds:.1f}s")
    out.append(("bold" if blocking else "green", summary))
    return out


def context_line(stats: dict[str, Any]) -> str:
    """How the model's context was built: the mode, tokens restored from cached KV pages against tokens prefilled."""
    mode = "whole repository" if stats["mode"] == "whole" else "retrieval"
    return (f"context: {mode}, {stats.get('restored_tokens', 0):,} tokens restored, "
            f"{stats.get('prefilled_tokens', 0):,} prefilled, model {stats.get('model_seconds', 0):.1f}s")


# --- SARIF 2.1.0 --------------------------------------------------------------------------------------------------
def to_sarif(report: ReviewReport, version: str, root: Path) -> dict[str, Any]:
    """One run of the 'repochat' tool; a finding is a result with one physical location (path relative to the
    repository root, which SARIF calls %SRCROOT%)."""
    results = [_sarif_result(f) for f in report.findings]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "repochat", "version": version, "rules": [{"id": "repochat/review", "shortDescription": {
                                "text": "Issue found by a model review of the change"}}]}},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": root.resolve().as_uri() + "/"}},
        "results": results,
        "properties": _sarif_run_properties(report),
        "invocations": [{"executionSuccessful": report.ran,
                         **({"toolExecutionNotifications": [{"level": "warning", "message": {"text": report.notice}}]}
                            if report.notice else {})}],
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


# What a reader of the SARIF file needs to judge the review: what it covered and how the model saw the repository.
_SARIF_STATS = ("mode", "mode_reason", "model", "restored_tokens", "prefilled_tokens")


def _sarif_run_properties(report: ReviewReport) -> dict[str, Any]:
    return {"target": report.target, "reviewed": report.reviewed, "notReviewed": report.not_reviewed,
            "seconds": round(report.seconds, 2), **{k: report.stats[k] for k in _SARIF_STATS if k in report.stats}}


def _sarif_result(finding: Finding) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": "repochat/review",
        "level": _SARIF_LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": finding.path, "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": finding.line}}}],
    }
    if finding.suggestion:
        result["properties"] = {"suggestion": finding.suggestion}
    return result
