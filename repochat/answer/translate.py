"""An English search query for a question asked in another language.

The index matches words: full-text search over code and English comments, and an English embedding model (MiniLM).
A question asked in Japanese shares no words with either, so retrieval found the wrong code for it. The model
translates the question first (a plain completion after two examples), in a small context of its own (the main
sequence and its cached prefix stay as they are); the answer is still written for the question as asked.
"""

from __future__ import annotations

from ..engine.llama import ContextParams, LlamaContext
from ..engine.session import Engine
from .prompt import question_language

# A plain completion after two examples: told to translate in a chat, the 0.5B model answered the question instead
# ("The function ... is called `discounted_price`").
EXAMPLE = ("Japanese: ジョブをキューに追加するメソッドはどれですか？\nEnglish: Which method adds a job to the queue?\n\n"
           "Japanese: 設定ファイルはどこで読み込まれますか？\nEnglish: Where is the configuration file read?\n\n")
MAX_TRANSLATION_TOKENS = 96
CONTEXT_TOKENS = 1024


def search_query(engine: Engine, question: str) -> str:
    """``question`` itself when it is in English, else the model's English translation of it (the question again
    if the translation comes back empty or the question is too long for the small context). The translation alone:
    the Japanese words would only add noise to the English embedding."""
    if question_language(question) == "en":
        return question
    one_line = " ".join(question.split())
    tokens = engine.model.tokenize(f"{EXAMPLE}Japanese: {one_line}\nEnglish:", add_special=True)
    if len(tokens) + MAX_TRANSLATION_TOKENS > CONTEXT_TOKENS:
        return question
    context = LlamaContext(engine.model, ContextParams(n_ctx=CONTEXT_TOKENS, threads=engine.settings.threads))
    try:
        context.decode(tokens, 0, logits_last=True)
        pieces: list[int] = []
        for position in range(len(tokens), len(tokens) + MAX_TRANSLATION_TOKENS):
            token = context.greedy_token()
            if engine.model.is_end(token) or b"\n" in engine.model.piece(token):
                break
            pieces.append(token)
            context.decode([token], position, logits_last=True)
    finally:
        context.close()
    english = b"".join(engine.model.piece(token) for token in pieces).decode("utf-8", "replace").strip()
    return english or question
