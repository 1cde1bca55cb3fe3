"""The whole-repository prefix shared by `repochat ask` and `repochat review`.

Both commands put the same token stream before their own part: the chat-template head, then every readable file in
stability order (least recently changed first, dirty and staged files last). Because the stream is the same, the KV
pages one command checkpoints are restored by the other. A review reads the repository as of the side it reviews
(the staged blobs, or a commit), given as ``overrides`` of the work tree's content; the files it leaves alone are
read from the work tree exactly as `ask` reads them, so their pages are the ones `ask` cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..config import Settings
from ..engine.planner import Plan, make_plan, pieces_sound
from ..errors import RepositoryError
from ..repo.history import stability_order
from .prefix_layout import Layout, LayoutMemory, arrange, fresh_layout
from .prompt import Prompt, Prompter, RenderedFile, render_file
from ..repo.filters import path_skip_reason
from ..repo.walk import INVALID_IGNORE_LINE, WalkResult, check_root, read_text, walk_repository
from ..tokens import count_tokens_batch, estimate_tokens

# A tiktoken estimate this far above the context limit means retrieval for sure: skip exact tokenization.
CLEARLY_TOO_BIG = 1.25


@dataclass
class Repository:
    root: Path
    walked: WalkResult
    files: list[RenderedFile]  # readable files in stability order
    unreadable: int

    def files_left_out(self, shown: int) -> int:
        """Files not in a context that shows ``shown`` of them: the other readable ones, the unreadable ones and
        those the walk skipped (an invalid ignore line is counted among the skips, but it is not a file)."""
        skipped = sum(len(paths) for why, paths in self.walked.skipped.items() if why != INVALID_IGNORE_LINE)
        return len(self.files) - shown + self.unreadable + skipped


def load_repository(root: Path, settings: Settings, overrides: Mapping[str, str | None] | None = None,
                    rev: str = "HEAD") -> Repository:
    """Every readable file, rendered, in stability order (history up to ``rev``). ``overrides`` replace the work
    tree's content of some paths (None: the path is not part of this view of the repository)."""
    root = check_root(root)
    walked = walk_repository(root, settings)
    overrides = overrides or {}
    paths = [f.path for f in walked.files if f.path not in overrides]
    paths += _admissible(overrides, walked, settings)
    files, unreadable = [], 0
    for rel in stability_order(root, paths, rev=rev):
        text = overrides[rel] if rel in overrides else read_text(root, rel)
        if text is None:
            unreadable += 1
            continue
        files.append(render_file(rel, text))
    if not files:
        raise RepositoryError(f"{root}: no readable text files to ask about (empty repository?)")
    return Repository(root, walked, files, unreadable)


def _admissible(overrides: Mapping[str, str | None], walked: WalkResult, settings: Settings) -> list[str]:
    """Overridden paths that the walker would have read: not ignored, not secret or generated, not too large.
    A path the work tree lacks (deleted there, present in the reviewed side) is judged by its name and size."""
    refused = {path for reason, paths in walked.skipped.items() if reason != "deleted" for path in paths}
    return [path for path, text in overrides.items()
            if text is not None and path not in refused and not path_skip_reason(path)
            and len(text.encode("utf-8", "replace")) <= settings.max_file_size]


def estimated_tokens(repo: Repository, prompter: Prompter) -> int:
    """The whole-repository prefix's size by the tiktoken estimate (no model tokenization)."""
    return len(prompter.head) + sum(count_tokens_batch([f.text for f in repo.files]))


def plan_and_prefix(repo: Repository, prompter: Prompter, model_path: Path, settings: Settings, effort: str,
               extra_tokens: int = 0, remember: bool = False) -> tuple[Plan, Prompt | None]:
    """The plan, and the whole-repository prefix when the plan puts the repository in the context (None when it
    says retrieval). With KV pieces the files come in stability order; with prefix pages they are laid out where
    the remembered layout put them (repochat.answer.prefix_layout), and ``remember``
    saves a changed layout for the next call (the work tree's view only: a review's view is not remembered).
    ``extra_tokens``: what the caller adds after the prefix beyond the plan's usual room."""
    if pieces_sound(model_path, settings):  # an edit recomputes only the edited files' pieces: no layout kept
        return _plan_layout(fresh_layout(repo.files), prompter, model_path, settings, effort, extra_tokens)
    memory = LayoutMemory(Path(settings.cache_dir), repo.root, scope=f"max_file_size={settings.max_file_size}")
    layout = arrange(repo.files, memory.load(), settings.max_stale_share, estimate_tokens)
    plan, prompt = _plan_layout(layout, prompter, model_path, settings, effort, extra_tokens)
    if prompt is None and layout.appended and effort != "low":  # superseded copies may be what keeps it out
        layout = fresh_layout(repo.files)
        plan, prompt = _plan_layout(layout, prompter, model_path, settings, effort, extra_tokens)
    if prompt is not None and layout.changed and remember:
        memory.save(layout)
    return plan, prompt


def _plan_layout(layout: Layout, prompter: Prompter, model_path: Path, settings: Settings, effort: str,
                 extra_tokens: int) -> tuple[Plan, Prompt | None]:
    """Exact model tokens decide, unless the tiktoken estimate is clearly over the limit."""
    estimate = len(prompter.head) + sum(count_tokens_batch([f.text for f in layout.entries]))
    plan = make_plan(model_path, estimate + extra_tokens, settings, effort)
    if plan.mode == "whole" or estimate + extra_tokens <= plan.context_limit * CLEARLY_TOO_BIG:
        prompt = prompter.whole(layout.base, layout.appended)
        plan = make_plan(model_path, len(prompt.tokens) + extra_tokens, settings, effort)
        if plan.mode == "whole":
            return plan, prompt
    return plan, None
