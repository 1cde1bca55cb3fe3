"""The model's chat template, split around the user's content.

The template from the GGUF (tokenizer.chat_template) is rendered once with a sentinel as the user message; the text
before the sentinel (system turn + user header) and after it (end of the user turn + assistant header) frame the
repository and the question. The framing is identical for every question, so the repository prefix stays cacheable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

log = logging.getLogger("repochat.chat")
_SENTINEL = "\x00REPOCHAT-USER-CONTENT\x00"
# ChatML, for GGUF files without a template (or with one that cannot be rendered).
_CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass(frozen=True)
class ChatFrame:
    before: str  # system turn and user header: comes before the repository
    after: str  # end of the user turn and assistant header: comes after the question
    template_source: str  # "gguf" or "chatml"


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def _render(template: str, system: str, bos: str, eos: str) -> str:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": _SENTINEL}]
    return environment.from_string(template).render(messages=messages, add_generation_prompt=True,
                                                    bos_token=bos, eos_token=eos)


def chat_frame(template: str | None, system: str, bos: str = "", eos: str = "") -> ChatFrame:
    """Split the rendered conversation around the user content; ChatML when the template is missing or unusable."""
    if template:
        try:
            rendered = _render(template, system, bos, eos)
            if rendered.count(_SENTINEL) == 1:
                before, after = rendered.split(_SENTINEL)
                return ChatFrame(before, after, "gguf")
            log.warning("chat template does not place the user message exactly once; using ChatML")
        except (jinja2.TemplateError, TypeError, ValueError, LookupError, AttributeError) as exc:
            log.warning("chat template cannot be rendered (%s); using ChatML", exc)
    before, after = _render(_CHATML, system, bos, eos).split(_SENTINEL)
    return ChatFrame(before, after, "chatml")
