"""Data for repochat.answer.lookup: how lookup questions are worded (English and Japanese), and how their answers read.

A pattern must match the whole question (trailing punctuation and a Japanese polite ending removed first), so a
question that asks more than the lookup ("where is X defined and why does it retry?") goes to the model. Every
pattern has one ``name`` group: the identifier asked about.
"""

from __future__ import annotations

# The identifier: ASCII only (Python's \w would swallow the Japanese particle after it), optionally qualified
# (Class.method, mod::func), written as a call, or quoted.
NAME = (r"[`'\"「『]?(?P<name>[A-Za-z_$][A-Za-z0-9_$]*(?:(?:\.|::|#)[A-Za-z_$][A-Za-z0-9_$]*)*)(?:\(\))?"
        r"[`'\"」』]?")
_KIND_EN = r"(?:function|method|class|type|struct|constant|variable|interface|trait|enum|macro|module|field)"
_KIND_JA = r"(?:関数|メソッド|クラス|型|構造体|定数|変数|インターフェース|トレイト|列挙型|マクロ|モジュール)"
EN = rf"(?:the\s+)?(?:{_KIND_EN}\s+)?{NAME}(?:\s+{_KIND_EN})?"
JA = rf"(?:{_KIND_JA}\s*(?:の\s*)?)?{NAME}(?:\s*(?:という\s*)?{_KIND_JA})?\s*"
_ASK = r"(?:(?:can|could)\s+you\s+)?(?:(?:please\s+)?(?:tell|show)\s+me\s+|please\s+)?"
_SITES = r"(?:functions?|methods?|code|files?|modules?|places?|classes)"
_BE = r"(?:is|are|was|'s)"
# "...のは" followed by where / who / what / which (function or file), or by nothing
_JA_WHAT = r"(?:\s*は)?(?:\s*(?:どこ|誰|だれ|何|なに|どれ|どの\s*(?:関数|メソッド|ファイル)))?"

# (intent, pattern); the first pattern that matches the whole question decides. Intents: "definition" (where X is
# defined), "callers" (who calls X), "usages" (where X is used), "callees" (what X calls).
PHRASINGS: tuple[tuple[str, str], ...] = (
    # --- English ---
    ("definition", rf"{_ASK}where\s*{_BE}\s+{EN}\s+(?:defined|declared|implemented|located)"
                   r"(?:\s+in\s+(?:the\s+)?(?:code|repo|repository|codebase|project))?"),
    ("definition", rf"{_ASK}where\s+{EN}\s+(?:is|are)\s+(?:defined|declared|implemented|located)"),
    ("definition", rf"{_ASK}(?:in\s+)?(?:which|what)\s+file\s+(?:is|are)\s+{EN}\s+"
                   r"(?:defined|declared|implemented|in)"),
    ("definition", rf"{_ASK}(?:which|what)\s+files?\s+(?:defines?|declares?|implements?|contains?)\s+"
                   rf"(?:the\s+(?:definition|declaration|implementation)\s+of\s+)?{EN}"),
    ("definition", rf"{_ASK}(?:(?:find|show(?:\s+me)?|go\s+to|jump\s+to|locate|where\s*{_BE}|what\s+is)\s+)?"
                   rf"the\s+(?:definition|declaration|implementation|source)\s+(?:of|for)\s+{EN}"),
    ("definition", rf"{_ASK}where\s*{_BE}\s+{EN}"),
    ("callers", rf"{_ASK}(?:who|what|which\s+{_SITES})\s+(?:calls?|invokes?|(?:is|are)\s+(?:calling|invoking))\s+{EN}"),
    ("callers", rf"{_ASK}(?:from\s+)?where\s*(?:{_BE}\s+)?{EN}(?:\s+(?:is|are))?\s+(?:called|invoked)(?:\s+from)?"),
    ("callers", rf"{_ASK}(?:(?:find|list|show(?:\s+me)?|(?:what|where|who)\s+are)\s+)?(?:all\s+)?(?:the\s+)?"
                rf"(?:callers|call\s+sites|invocations)\s+(?:of|for|to)\s+{EN}"),
    ("usages", rf"{_ASK}where\s*(?:{_BE}\s+)?{EN}(?:\s+(?:is|are))?\s+(?:used|referenced|imported)"),
    ("usages", rf"{_ASK}(?:who|what|which\s+{_SITES})\s+(?:uses?|references?|imports?|depends?\s+on)\s+{EN}"),
    ("usages", rf"{_ASK}(?:(?:find|list|show(?:\s+me)?|(?:what|where|who)\s+are)\s+)?(?:all\s+)?(?:the\s+)?"
               rf"(?:usages?|uses|references|occurrences)\s+(?:of|to)\s+{EN}"),
    ("callees", rf"{_ASK}(?:what|which(?:\s+(?:functions?|methods?))?|what\s+(?:functions?|methods?))\s+"
                rf"does\s+{EN}\s+(?:call|invoke)"),
    ("callees", rf"{_ASK}(?:what|which\s+(?:functions?|methods?))\s+(?:is|are)\s+(?:called|invoked)\s+"
                rf"(?:by|from|in)\s+{EN}"),
    ("callees", rf"{_ASK}(?:(?:find|list|show(?:\s+me)?|(?:what|where|who)\s+are)\s+)?(?:all\s+)?(?:the\s+)?"
                rf"(?:callees\s+of|calls\s+(?:made\s+)?(?:by|in|from))\s+{EN}"),
    # --- Japanese (the polite ending, e.g. ですか / ますか, is removed before matching) ---
    ("definition", rf"{JA}(?:は|って|が)\s*どこ\s*(?:で|に)\s*(?:定義|宣言|実装)(?:さ?れて(?:い)?る|さ?れて(?:い)?|され|し|して(?:い)?る|して(?:い)?)?"),
    ("definition", rf"{JA}の\s*(?:定義|宣言|実装)(?:場所|箇所)?\s*(?:は|が)?\s*(?:どこ|どこにある|どこで|どのファイル)?"),
    ("definition", rf"{JA}(?:が|を)\s*(?:定義|宣言|実装)\s*(?:されている|している|された|した)\s*"
                   r"(?:の|場所|ファイル|箇所)" + _JA_WHAT),
    ("definition", rf"{JA}(?:は|って)\s*(?:どこ|どの\s*ファイル)\s*(?:に\s*(?:あり|ある)|にあり|で\s*(?:定義|宣言)\s*され\S*|)"),
    ("callers", rf"{JA}を\s*(?:呼び出して|呼んで|コールして|実行して)\s*(?:い(?:る|ます)?)?\s*"
                r"(?:の|関数|メソッド|箇所|ところ|場所|ファイル|コード)?" + _JA_WHAT),
    ("callers", rf"{JA}(?:は|が)\s*どこ\s*(?:から|で)\s*(?:呼び出され|呼ばれ|コールされ|呼び出し)(?:て(?:い)?(?:る)?|た)?"),
    ("callers", rf"{JA}の\s*(?:呼び出し元|呼出し元|呼び出し箇所|呼出し箇所|コール元|呼び出し側)" + _JA_WHAT),
    ("callers", rf"{JA}を\s*(?:呼び出す|呼ぶ|コールする)\s*(?:の|関数|メソッド|箇所|ところ|コード)" + _JA_WHAT),
    ("usages", rf"{JA}(?:は|が)\s*どこ\s*(?:で|から)\s*(?:使われ|使用され|参照され|利用され|インポートされ|使っ)(?:て(?:い)?(?:る)?|た)?"),
    ("usages", rf"{JA}を\s*(?:使って|使用して|参照して|利用して|インポートして)\s*(?:い(?:る|ます)?)?\s*"
               r"(?:の|関数|メソッド|箇所|ところ|場所|ファイル|コード)" + _JA_WHAT),
    ("usages", rf"{JA}の\s*(?:使用箇所|参照箇所|利用箇所|使用例|参照元|使われ方|使用場所)" + _JA_WHAT),
    ("callees", rf"{JA}(?:は|が)\s*(?:何|なに|どの\s*(?:関数|メソッド))\s*を\s*(?:呼び出して|呼んで|呼び出し|呼ん|呼び)(?:(?:い)?る|い)?"),
    ("callees", rf"{JA}(?:が|の中で|内で|で)\s*(?:呼び出して|呼んで|呼び出され|呼ばれ)\s*(?:い)?る\s*(?:関数|メソッド|もの|の)" + _JA_WHAT),
    ("callees", rf"{JA}の\s*(?:呼び出し先|呼出し先|コール先)" + _JA_WHAT),
)
# Removed from the end of a question before matching: punctuation, then one polite ending.
TRAILING = r"[\s?？。．.!！]+$"
POLITE_ENDINGS = r"(?:でしょうか|ですか|ますか|ました|ます|です|のか|か)$"
# Words a loose pattern can take for a name ("where is it", "where is the function defined").
NOT_NAMES = frozenset({"it", "this", "that", "they", "them", "these", "those", "there", "here", "what", "which",
                       "who", "the", "a", "an", "function", "method", "class", "type", "code", "file", "files",
                       "everything", "something", "anything", "one", "defined", "used", "called"})

# The answer's wording, by language ("en", "ja"). {name} is written as code by the caller.
MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "definitions": "Definition of {name}:",
        "definitions_many": "{name} has {count} definitions:",
        "no_definition": "{name} has no definition in the index (it may come from a library).",
        "callers": "Called from {sites}:",
        "usages": "Used in {sites}:",
        "callees": "{owner} calls:",
        "no_callers": "No calls to {name} were found in the index.",
        "no_usages": "No uses of {name} were found in the index.",
        "no_callees": "{owner} calls nothing the index records.",
        "sites": "{places} in {files}",
        "place": "1 place", "places": "{count} places",
        "file": "1 file", "files": "{count} files",
        "module_level": "module level",
        "more": "and {places} more in {files}",
        "more_definition": "and 1 more definition", "more_definitions": "and {count} more definitions",
    },
    "ja": {
        "definitions": "{name} の定義:",
        "definitions_many": "{name} の定義（{count} 件）:",
        "no_definition": "{name} の定義はインデックスにありません（ライブラリのものかもしれません）。",
        "callers": "呼び出し元（{sites}）:",
        "usages": "使用箇所（{sites}）:",
        "callees": "{owner} が呼び出しているもの:",
        "no_callers": "インデックスには {name} の呼び出しが見つかりませんでした。",
        "no_usages": "インデックスには {name} の使用箇所が見つかりませんでした。",
        "no_callees": "インデックスには {owner} からの呼び出しが記録されていません。",
        "sites": "{files}、{places}",
        "place": "1 箇所", "places": "{count} 箇所",
        "file": "1 ファイル", "files": "{count} ファイル",
        "module_level": "モジュールの最上位",
        "more": "ほか {files}に {places}",
        "more_definition": "ほか 1 件の定義", "more_definitions": "ほか {count} 件の定義",
    },
}
# Index kinds as the answer names them, where the language has its own word.
KIND_NAMES: dict[str, dict[str, str]] = {
    "ja": {"function": "関数", "method": "メソッド", "class": "クラス", "struct": "構造体", "interface": "インターフェース",
           "trait": "トレイト", "enum": "列挙型", "type": "型", "constant": "定数", "variable": "変数", "macro": "マクロ",
           "module": "モジュール", "field": "フィールド"},
}
