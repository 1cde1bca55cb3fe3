"""What a secret looks like: the names of files that hold credentials, and the shapes of keys and tokens in text.

Three kinds of rule, from the most to the least certain:
- paths (gitignore-style, folded into one matcher by repo.filters): files that exist to hold credentials;
- token shapes, checked in every file: formats a provider made recognisable on purpose (a fixed prefix and a
  length), so ordinary code does not match them;
- assignments in configuration files (``password = hunter2`` in an .ini, ``token: ...`` in YAML): in code the same
  line is usually an expression (``password = request.form["password"]``), so these apply to configuration files
  only, and a value that is a reference or a placeholder (``${DB_PASSWORD}``, ``<password>``, ``changeme``) is not
  a secret.

Each pattern starts with a literal where the format allows: Python's re then scans for that literal quickly, while
a pattern that may start anywhere (or one alternation of them all) is tried at every byte. A check that needs the
character before the literal is written as a lookbehind after it (``sk-(?<![A-Za-z0-9]sk-)``) for the same reason.
No pattern nests quantifiers, so none can backtrack more than linearly.
"""

from __future__ import annotations

import bisect
import re
from pathlib import PurePosixPath

# Files that commonly hold credentials: never read, never indexed, never sent to a model.
SECRET_PATH_PATTERNS = [
    ".env", ".env.*", "*.env", "!.env.example", "!.env.sample", "!.env.template",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx", "*.gpg", "*.asc", "*.ppk",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "!*.pub",
    ".netrc", ".pgpass", ".pypirc", ".npmrc", ".git-credentials", ".htpasswd", ".dockercfg", ".s3cfg",
    ".vault-token", "credentials", "credentials.*", "*credentials*.json", "secrets.*", "*.secret", "*.secrets",
    "service-account*.json", "terraform.tfstate*", ".aws/", ".ssh/", ".docker/config.json",
    ".kube/", "kubeconfig*", "*.kubeconfig",
]

# Token shapes, checked in every file: (format, pattern). Each starts with a literal character (see _grouped).
_TOKENS = [
    ("private key", r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"),
    ("AWS access key id", r"AKIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
    ("AWS temporary access key id", r"ASIA[0-9A-Z]{16}(?![0-9A-Za-z])"),
    ("AWS secret access key", r"_secret_access_key[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    ("AWS secret access key", r"_SECRET_ACCESS_KEY[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    ("AWS secret access key", r"SecretAccessKey[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    ("GitHub token", r"gh[pousr]_[A-Za-z0-9]{36,}"),
    ("GitHub fine-grained token", r"github_pat_[A-Za-z0-9_]{40,}"),
    ("GitLab token", r"gl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_-]{20,}"),
    ("OpenAI or Anthropic key", r"sk-(?<![A-Za-z0-9]sk-)[A-Za-z0-9]{32,}(?![A-Za-z0-9])"),
    ("OpenAI or Anthropic key", r"sk-(?<![A-Za-z0-9]sk-)(?:proj|svcacct|admin|ant)-[A-Za-z0-9_-]{32,}"),
    ("Google API key", r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("Stripe key", r"k_live_(?<=[rs]k_live_)[0-9A-Za-z]{20,}"),
    ("JSON Web Token", r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    ("Slack token", r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("Slack webhook", r"hooks\.slack\.com/services/(?!T0+/)T[A-Za-z0-9_]{6,}/B[A-Za-z0-9_]{6,}/[A-Za-z0-9_]{20,}"),
    ("Azure storage key", r"AccountKey=[A-Za-z0-9+/]{40,}"),
    ("Azure shared access key", r"SharedAccessKey=[A-Za-z0-9+/]{30,}"),
    ("npm token", r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("PyPI token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    ("Hugging Face token", r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{34,}(?![A-Za-z0-9])"),
    ("Twilio API key", r"SK(?<![A-Za-z0-9]SK)[0-9a-f]{32}(?![0-9A-Za-z])"),
    ("SendGrid key", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    ("Shopify token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("age secret key", r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    ("kubeconfig client key", r"client-key-data:[ \t]*[A-Za-z0-9+/]{20,}"),
    ("registry auth", r'"auth"[ \t]*:[ \t]*"[A-Za-z0-9+/]{12,}={0,2}"'),
    # user:password@host in a URL (database URLs, git remotes), unless the password looks like a placeholder (starts
    # with one: pass%20word in a URL parser's tests) or the host is this machine: documentation and test fixtures are
    # full of postgres://user:password@localhost
    ("URL with a password", r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\"'<>()\[\]]{0,64}:"
                            r"(?!(?i:pass|mypass|pwd|secret|token|tiger|changeme|example|test|foo|bar|baz|dummy|xx|\*))"
                            r"[^\s:/?#@\"'<>()\[\]{}$]{3,128}@(?=[A-Za-z0-9])"
                            r"(?!localhost|127\.0\.0\.1|0\.0\.0\.0|example\.|host[:/\s\"']|hostname)"),
]

# Configuration files, where a key = value line holds a literal value (in code it would be an expression).
_CONFIG_SUFFIXES = {".ini", ".cfg", ".conf", ".cnf", ".properties", ".yaml", ".yml", ".toml"}
_CONFIG_FORMAT = "password or token in a configuration file"
# A key that may hold a credential, then = or :, found in the lowercased file: a cheap first pass (the words'
# first letters make a set Python's re scans for); each line it finds is then checked by _CONFIG_LINE.
_CONFIG_KEY_WORD = re.compile(r"(?:pass(?:word|wd|phrase)|secret|token|key)[\"']?[ \t]*[:=]")
# A value that is a reference (${VAR}, %(var)s, <...>, {{ ... }}, !Ref, *alias), a word that stands for a missing
# value or a permission (GitHub workflows say `id-token: write`), a placeholder, or a number, is not a secret.
_PLACEHOLDER = (r"(?![$%<{\[(*&!@~]"
                r"|(?i:null|none|nil|true|false|yes|no|on|off|read|write|password|secret|token|env|todo)"
                r"(?![A-Za-z0-9_])"
                r"|(?i:changeme|change_me|example|your|xxx|redacted|dummy|placeholder|replace)"
                r"|[0-9]+[ \t]*$)")
# key = value or key: value, the key ending in a word for a credential; a YAML list item may precede it, but not a
# command-line flag (--token=... in a documentation block)
_CONFIG_LINE = re.compile(
    r"[ \t]*(?:-[ \t]+)?[\"']?(?!-)[A-Za-z0-9_.-]*"
    r"(?i:password|passwd|passphrase|secret|secret[_-]?key|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|client[_-]?secret)[\"']?[ \t]*[:=][ \t]*[\"']?" + _PLACEHOLDER + r"[^\s\"']{4,}")
# A Kubernetes Secret exists to hold secrets: the whole file is one, whatever its data keys are called.
_K8S_FORMAT = "Kubernetes secret"
_K8S_SECRET = r"kind:(?<![^\n]kind:)[ \t]*[\"']?Secret[\"']?[ \t]*$"
_K8S_BYTES, _K8S_TEXT = re.compile(_K8S_SECRET.encode(), re.M), re.compile(_K8S_SECRET, re.M)
# A private key runs to its END line: every line between is part of the secret (the header alone is not).
_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY[A-Z ]{0,10}-----[\s\S]*?(?:-----END[^\n]*|\Z)")


def _grouped(patterns: list[str]) -> list[str]:
    """The patterns joined by their first character, one regex per character, each alternative a named group
    (r<index>): a regex scan costs about the same whatever it looks for, so one scan per first character is as
    fast as one per pattern and needs a third of the scans (measured over site-packages). One alternation of
    everything is slower still: it is tried at every byte that starts any pattern."""
    by_first: dict[str, list[str]] = {}
    for index, pattern in enumerate(patterns):
        assert pattern[0] not in "\\[(.*+?{|^$" and pattern[1] not in "*+?{", pattern  # one literal character first
        by_first.setdefault(pattern[0], []).append(f"(?P<r{index}>{pattern[1:]})")
    return [f"{first}(?:{'|'.join(parts)})" for first, parts in by_first.items()]


_NAMES = [name for name, _pattern in _TOKENS]
_GROUPS_BYTES = [re.compile(pattern.encode()) for pattern in _grouped([pattern for _name, pattern in _TOKENS])]
_GROUPS_TEXT = [re.compile(pattern) for pattern in _grouped([pattern for _name, pattern in _TOKENS])]

WITHHELD = "[line withheld: looks like a secret]"


def is_config_file(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in _CONFIG_SUFFIXES


def find_secret(data: bytes, path: str = "") -> str | None:
    """The format of the first secret found in ``data`` (a file's bytes), or None. ``path`` (repository-relative)
    turns on the configuration-file rules for configuration files."""
    for group in _GROUPS_BYTES:
        match = group.search(data)
        if match and match.lastgroup:  # every alternative is a named group, so one always matched
            return _NAMES[int(match.lastgroup[1:])]
    if path and is_config_file(path):
        return _config_secret(data)
    return None


def _config_secret(data: bytes) -> str | None:
    if b"kind:" in data and _K8S_BYTES.search(data):
        return _K8S_FORMAT
    lowered = data.lower()  # ASCII only: offsets stay those of data
    for hit in _CONFIG_KEY_WORD.finditer(lowered.decode("latin-1")):
        begin = data.rfind(b"\n", 0, hit.start()) + 1
        end = data.find(b"\n", hit.end())
        line = data[begin:end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")
        if _CONFIG_LINE.match(line):
            return _CONFIG_FORMAT
    return None


def secret_lines(text: str, path: str = "") -> set[int]:
    """0-based numbers of the lines of ``text`` that hold (part of) a secret; every line of a Kubernetes Secret."""
    lines = text.split("\n")
    config = bool(path) and is_config_file(path)
    if config and "kind:" in text and _K8S_TEXT.search(text):
        return set(range(len(lines)))
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    spans = [m.span() for group in _GROUPS_TEXT for m in group.finditer(text)]
    spans += [m.span() for m in _KEY_BLOCK.finditer(text)]
    found: set[int] = set()
    for begin, end in spans:
        first = bisect.bisect_right(starts, begin) - 1
        last = bisect.bisect_right(starts, max(begin, end - 1)) - 1
        found.update(range(first, last + 1))
    if config:
        found.update(number for number, line in enumerate(lines)
                     if _CONFIG_KEY_WORD.search(line.lower()) and _CONFIG_LINE.match(line.rstrip("\r")))
    return found


def withhold_secret_lines(lines: list[str], path: str = "", whole: bool = False) -> list[str]:
    """``lines`` with each line that holds a secret replaced by WITHHELD (``whole``: every line)."""
    if whole:
        return [WITHHELD] * len(lines)
    hidden = secret_lines("\n".join(lines), path)
    return [WITHHELD if number in hidden else line for number, line in enumerate(lines)]
