"""Chat-template framing: the GGUF's own template split around the user content."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_support import default_model_path
from repochat.engine.chat import chat_frame
from repochat.engine.gguf import read_gguf

GEMMA_LIKE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set rest = messages[1:] %}{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ (first if loop.first else '') + m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_default_models_template_frames_the_user_turn(tmp_path_factory: pytest.TempPathFactory) -> None:
    template = read_gguf(default_model_path(tmp_path_factory)).get("tokenizer.chat_template")
    frame = chat_frame(template, "SYSTEM RULES")
    assert frame.template_source == "gguf"
    assert frame.before == "<|im_start|>system\nSYSTEM RULES<|im_end|>\n<|im_start|>user\n"
    assert frame.after == "<|im_end|>\n<|im_start|>assistant\n"


def test_template_that_folds_the_system_prompt_into_the_user_turn() -> None:
    frame = chat_frame(GEMMA_LIKE, "RULES", bos="<bos>")
    assert frame.before == "<bos><start_of_turn>user\nRULES\n\n"
    assert frame.after == "<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize("template", [None, "", "{% if %}broken", "{{ raise_exception('no system role') }}",
                                      "{% for m in messages %}{{ m.content }}{{ m.content }}{% endfor %}"])
def test_missing_or_unusable_template_falls_back_to_chatml(template: str | None) -> None:
    frame = chat_frame(template, "RULES")
    assert frame.template_source == "chatml"
    assert frame.before.endswith("<|im_start|>user\n") and frame.after == "<|im_end|>\n<|im_start|>assistant\n"


def test_template_source_is_checked_for_the_sentinel_only_once(tmp_path: Path) -> None:
    frame = chat_frame("{{ messages[1].content }}", "RULES")
    assert (frame.before, frame.after, frame.template_source) == ("", "", "gguf")
