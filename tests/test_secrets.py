"""A planted-secret corpus: realistic (fake) credentials of many formats, each in the kind of file it leaks from,
in a real git repository. None may reach the index (any LanceDB table), a search result, the whole-repository
context, or a review prompt, including the removed lines of a commit that takes a key out. Ordinary code that
talks about passwords and tokens is still indexed.

The values are generated here, from a seeded generator, in each provider's published shape: no real credential is
stored in this file.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lancedb
import pytest
from click.testing import CliRunner

from repochat.cli.main import cli
from repochat.config import Settings, load_settings
from repochat.index.indexer import update_index
from repochat.index.schema import FOLDER
from repochat.index.store import IndexStore
from repochat.repo.secret_rules import WITHHELD
from repochat.answer.prefix import load_repository
from repochat.review.run import PROMPT_TOKENS, build_context, select_files
from repochat.review.diff import STAGED, load_change, side_contents
from repochat.review.prompt import prompt_text

from repo_support import git, write_files

_RNG = random.Random(20240610)
ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits
URLSAFE = ALNUM + "-_"
BASE64 = ALNUM + "+/"
HEX = "0123456789abcdef"


def token(alphabet: str, length: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(length))


def password() -> str:
    """A password as people pick them: starts with a letter, mixes in digits and a symbol."""
    return token(string.ascii_letters, 1) + token(ALNUM + "-_.!", 13)


def b64url(data: dict) -> str:  # type: ignore[type-arg]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def pem_body(lines: int = 6) -> list[str]:
    return [token(BASE64, 64) for _ in range(lines)]


@dataclass
class Planted:
    format: str
    path: str
    text: str
    needles: list[str]  # the secret values: none may appear anywhere downstream


def planted_corpus() -> list[Planted]:
    corpus: list[Planted] = []

    def plant(fmt: str, path: str, text: str, *needles: str) -> None:
        corpus.append(Planted(fmt, path, text, list(needles)))

    value = "AKIA" + token(UPPER, 16)
    plant("AWS access key id", "config/aws.py", f'AWS_REGION = "eu-west-1"\nAWS_ACCESS_KEY_ID = "{value}"\n', value)
    value = "ASIA" + token(UPPER, 16)
    plant("AWS temporary key id", "scripts/assume_role.sh",
          f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID={value}\nexec aws s3 ls\n", value)
    value = token(BASE64, 40)
    plant("aws_secret_access_key", "app/storage_settings.py",
          f'import boto3\n\nclient = boto3.client("s3", aws_access_key_id=KEY_ID,\n'
          f'                      aws_secret_access_key="{value}")\n', value)
    value = "ghp_" + token(ALNUM, 36)
    plant("GitHub token", "ci/release.py", f'import os\n\nGITHUB_TOKEN = "{value}"\nREPO = "acme/widgets"\n', value)
    value = "github_pat_" + token(ALNUM, 22) + "_" + token(ALNUM, 59)
    plant("GitHub fine-grained token", "tools/publish.sh", f"#!/bin/sh\nTOKEN={value}\ngh release create v1\n", value)
    value = "sk-" + token(ALNUM, 48)
    plant("OpenAI legacy key", "services/llm.py", f'import openai\n\nopenai.api_key = "{value}"\n', value)
    value = "sk-proj-" + token(URLSAFE, 74) + "T3BlbkFJ" + token(URLSAFE, 74)
    plant("OpenAI project key", "services/openai_client.py",
          f'from openai import OpenAI\n\nclient = OpenAI(api_key="{value}")\n', value)
    value = "sk-ant-api03-" + token(URLSAFE, 93) + "AA"
    plant("Anthropic key", "web/src/claude.ts", f'export const anthropicKey = "{value}";\n', value)
    value = "AIza" + token(URLSAFE, 35)
    plant("Google API key", "web/src/maps.js", f'const MAPS_KEY = "{value}";\nexport default MAPS_KEY;\n', value)
    value = "glpat-" + token(URLSAFE, 20)
    plant("GitLab token", "ci/gitlab_mirror.sh", f"#!/bin/sh\nGITLAB_TOKEN={value}\ngit push mirror main\n", value)
    value = "sk_live_" + token(ALNUM, 99)
    plant("Stripe secret key", "billing/stripe_config.rb", f'Stripe.api_key = "{value}"\n', value)
    value = "rk_live_" + token(ALNUM, 99)
    plant("Stripe restricted key", "billing/client.go",
          f'package billing\n\nconst restrictedKey = "{value}"\n', value)
    signature = token(URLSAFE, 43)
    value = (b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": token(HEX, 12), "role": "admin"})
             + "." + signature)
    plant("JSON Web Token", "tests/fixtures/session.json",
          json.dumps({"user": "ada", "access_token": value}, indent=2) + "\n", signature)
    value = password()
    plant("password in .ini", "config.ini", f"[database]\nhost = db.internal\nuser = app\npassword = {value}\n", value)
    value = password()
    plant("password in .properties", "src/main/resources/application.properties",
          f"spring.datasource.url=jdbc:postgresql://db.internal/app\nspring.datasource.password={value}\n", value)
    value = password()
    plant("password in YAML", "config/database.yml",
          f"production:\n  adapter: postgresql\n  username: app\n  password: {value}\n", value)
    value = password()
    plant("password in .cfg", "deploy/app.cfg", f"[smtp]\nuser = mailer\nsmtp_password = {value}\n", value)
    value = password()
    plant("password in TOML", "config/prod.toml", f'[db]\nuser = "app"\npassword = "{value}"\n', value)
    value = password()
    plant("password in docker-compose", "docker-compose.yml",
          f"services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: {value}\n", value)
    value = token(HEX, 6) + "." + token(HEX, 16)
    plant("kubeconfig token", "deploy/kubeconfig.yaml",
          "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://10.0.0.1:6443\n"
          f"users:\n- name: admin\n  user:\n    token: {value}\n", value)
    key_data = token(BASE64, 120)
    plant(".kube/config", ".kube/config",
          "apiVersion: v1\nkind: Config\nusers:\n- name: dev\n  user:\n"
          f"    client-certificate-data: {token(BASE64, 80)}\n    client-key-data: {key_data}\n", key_data)
    value = base64.b64encode(token(ALNUM, 24).encode()).decode()
    plant("Kubernetes Secret", "deploy/k8s/tls-secret.yaml",
          f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\ntype: kubernetes.io/tls\ndata:\n  tls.key: {value}\n",
          value)
    value = token(BASE64, 86) + "=="
    plant("Azure storage connection string", "app/appsettings.json",
          json.dumps({"ConnectionStrings": {"Storage": "DefaultEndpointsProtocol=https;AccountName=acmeprod;"
                                                       f"AccountKey={value};EndpointSuffix=core.windows.net"}},
                     indent=2) + "\n", value)
    body = pem_body()
    plant("GCP service account JSON", "deploy/gcp-key.json",
          json.dumps({"type": "service_account", "project_id": "acme-prod", "private_key_id": token(HEX, 40),
                      "private_key": "\n".join(["-----BEGIN PRIVATE KEY-----", *body, "-----END PRIVATE KEY-----\n"]),
                      "client_email": "deployer@acme-prod.iam.gserviceaccount.com"}, indent=2) + "\n", *body)
    value = "npm_" + token(ALNUM, 36)
    plant("npm token", "scripts/publish.js", f'const token = "{value}";\nmodule.exports = {{ token }};\n', value)
    value = "pypi-AgEIcHlwaS5vcmc" + token(URLSAFE, 160)
    plant("PyPI token", "release/upload.py", f'USERNAME = "__token__"\nPASSWORD = "{value}"\n', value)
    value = "hf_" + token(ALNUM, 34)
    plant("Hugging Face token", "ml/download.py",
          f'from huggingface_hub import login\n\nlogin(token="{value}")\n', value)
    value = "SK" + token(HEX, 32)
    plant("Twilio API key", "notify/sms.py", f'TWILIO_API_KEY = "{value}"\nTWILIO_FROM = "+15550100"\n', value)
    value = "SG." + token(URLSAFE, 22) + "." + token(URLSAFE, 43)
    plant("SendGrid key", "mail/send.py", f'SENDGRID_API_KEY = "{value}"\n', value)
    value = f"T{token(UPPER, 8)}/B{token(UPPER, 8)}/{token(ALNUM, 24)}"
    plant("Slack webhook", "ops/alerts.py", f'WEBHOOK = "https://hooks.slack.com/services/{value}"\n', value)
    value = f"xoxb-{token(string.digits, 12)}-{token(string.digits, 13)}-{token(ALNUM, 24)}"
    plant("Slack bot token", "bot/slack.py", f'SLACK_BOT_TOKEN = "{value}"\n', value)
    value = base64.b64encode(f"deploy:{password()}".encode()).decode()
    plant("Docker config auth", ".docker/config.json",
          json.dumps({"auths": {"registry.acme.io": {"auth": value}}}, indent=2) + "\n", value)
    value = base64.b64encode(f"ci:{password()}".encode()).decode()
    plant("registry auth in JSON", "deploy/registry-auth.json",
          json.dumps({"auths": {"ghcr.io": {"auth": value}}}, indent=2) + "\n", value)
    value = password()
    plant("database URL with a password", "app/settings.py",
          f'import os\n\nDEBUG = False\nDATABASE_URL = "postgres://app:{value}@db.prod.internal:5432/app"\n', value)
    value = password()
    plant("Redis URL with a password", "app/cache.py", f'CACHE_URL = "redis://:{value}@cache.internal:6379/0"\n', value)
    body = pem_body()
    plant("PEM key in code", "tests/keys.py",
          'KEY = """-----BEGIN RSA PRIVATE KEY-----\n' + "\n".join(body) + '\n-----END RSA PRIVATE KEY-----\n"""\n',
          *body)
    value = password()
    plant(".env.production", ".env.production", f"DB_PASSWORD={value}\nDEBUG=false\n", value)
    body = pem_body()
    plant("id_rsa", "deploy/id_rsa",
          "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END OPENSSH PRIVATE KEY-----\n", *body)
    value = token(HEX, 8) + "-" + token(HEX, 4) + "-" + token(HEX, 4) + "-" + token(HEX, 4) + "-" + token(HEX, 12)
    plant(".npmrc", ".npmrc", f"//registry.npmjs.org/:_authToken={value}\n", value)
    return corpus


# Ordinary files that mention passwords, keys and tokens without holding one: they must still be indexed.
ORDINARY = {
    "web/login.py": ('from flask import request\n\n\ndef login_form_credentials():\n'
                     '    password = request.form["password"]\n    token = request.headers.get("Authorization")\n'
                     '    api_key = os.environ["API_KEY"]\n    return password, token, api_key\n'),
    "tests/test_key_prefixes.py": ('def test_short_prefixes_are_not_keys():\n    assert not looks_like_key("sk-abc")\n'
                                   '    assert not looks_like_key("ghp_123")\n    assert "AKIA" in KNOWN_PREFIXES\n'),
    "docs/tokens.md": ("# Tokens\n\nCreate a personal access token (it starts with `ghp_`) and export it as\n"
                       "GITHUB_TOKEN. AWS access key ids start with AKIA. Connect with\n"
                       "`postgres://user:password@localhost/app` in development.\n"),
    "config/app.yaml": ("database:\n  password: ${DB_PASSWORD}\n  token: \"{{ vault_token }}\"\nmodel:\n"
                        "  max_tokens: 512\n  use_token: true\n"),
    "config/service.ini": "[db]\npassword = %(DB_PASSWORD)s\nsecret_key =\ntimeout = 30\n",
    "web/src/panel.js": 'export const css = "task-management-service-configuration-panel-wide";\n',
    ".github/workflows/release.yml": ("on: push\npermissions:\n  id-token: write\n  contents: read\njobs:\n"
                                      "  publish:\n    steps:\n      - uses: pypa/gh-action-pypi-publish@release/v1\n"
                                      "        with:\n          password: ${{ secrets.PYPI_API_TOKEN }}\n"),
    "docs/cli.yaml": "examples: |\n  gcloud groups search --page-token=ala9glealanal908 --labels=x\n",
}
ORDINARY_WORDS = {"web/login.py": "login_form_credentials", "tests/test_key_prefixes.py": "KNOWN_PREFIXES",
                  "docs/tokens.md": "personal access token", "config/app.yaml": "vault_token",
                  "config/service.ini": "timeout", "web/src/panel.js": "task-management-service",
                  ".github/workflows/release.yml": "gh-action-pypi-publish", "docs/cli.yaml": "groups search"}


def settings_of(root: Path) -> Settings:
    return load_settings(root, {"embeddings": False})


def index_rows(root: Path) -> str:
    """Every row of every LanceDB table of the index, as one JSON text."""
    db = lancedb.connect(str(settings_of(root).index_path(root) / FOLDER / "db"))
    tables = db.list_tables().tables
    assert {"chunks", "symbols", "files"} <= set(tables)
    return json.dumps({name: db.open_table(name).to_arrow().to_pylist() for name in tables}, default=str)


def index_bytes(root: Path) -> bytes:
    """Every file the index wrote (data, full-text index, metadata), in case a value is stored outside the rows."""
    return b"".join(p.read_bytes() for p in sorted(settings_of(root).index_path(root).rglob("*")) if p.is_file())


def search_results(root: Path, query: str) -> str:
    """What `repochat search` returns for the query (the results only: the JSON repeats the query itself)."""
    result = CliRunner().invoke(cli, ["search", query, "-C", str(root), "--mode", "fts", "--json", "-k", "50"])
    assert result.exit_code == 0, result.output
    return json.dumps(json.loads(result.output)["results"])


@pytest.fixture(scope="module")
def corpus() -> list[Planted]:
    return planted_corpus()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, corpus: list[Planted]) -> Path:
    root = tmp_path_factory.mktemp("secrets") / "repo"
    root.mkdir()
    write_files(root, {**{p.path: p.text for p in corpus}, **ORDINARY})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A", "--force")
    git(root, "commit", "-q", "-m", "a repository with leaked credentials")
    result = CliRunner().invoke(cli, ["index", str(root), "--no-embed", "--json"])
    assert result.exit_code == 0, result.output
    return root


def test_the_corpus_covers_the_formats(corpus: list[Planted]) -> None:
    formats = {p.format for p in corpus}
    assert len(formats) == len(corpus) >= 21
    assert all(needle in p.text for p in corpus for needle in p.needles)  # each needle really is in its file


def test_no_planted_secret_reaches_the_index_search_or_the_whole_repository(indexed: Path,
                                                                           corpus: list[Planted]) -> None:
    rows, raw = index_rows(indexed), index_bytes(indexed)
    whole = "\n".join(f.text for f in load_repository(indexed, settings_of(indexed)).files)
    leaks: dict[str, list[str]] = {}
    for planted in corpus:
        for needle in planted.needles:
            where = [name for name, found in (("index rows", needle in rows), ("index files", needle.encode() in raw),
                                              ("whole repository", needle in whole))
                     if found]
            if needle in search_results(indexed, needle):
                where.append("search")
            if where:
                leaks.setdefault(planted.format, []).extend(where)
    for planted in corpus:
        print(f"{planted.format:34s} {planted.path:45s} leaks: {len(leaks.get(planted.format, []))}")
    print(f"total leaks: {sum(len(v) for v in leaks.values())} over {len(corpus)} formats")
    assert leaks == {}


def test_every_planted_file_is_counted_as_a_secret(indexed: Path, corpus: list[Planted]) -> None:
    """Left out as a secret, by its path (the walker) or by its content (the indexer), not for another reason."""
    by_path = IndexStore.open(settings_of(indexed).index_path(indexed)).meta["skipped"].get("secret", [])
    by_content = [row["path"] for row in json.loads(index_rows(indexed))["files"] if row["status"] == "secret"]
    assert sorted(p.path for p in corpus if p.path not in by_path + by_content) == []


def test_ordinary_code_about_passwords_and_tokens_is_still_indexed(indexed: Path) -> None:
    rows = json.loads(index_rows(indexed))
    status = {row["path"]: row["status"] for row in rows["files"]}
    assert {path: status.get(path) for path in ORDINARY} == {path: "indexed" for path in ORDINARY}
    chunks = "\n".join(row["text"] for row in rows["chunks"])
    assert all(word in chunks for word in ORDINARY_WORDS.values())


# --- review ---------------------------------------------------------------------------------------------------
def review_prompt(root: Path, target: str) -> tuple[str, dict[str, str]]:
    """The review's user message for ``target``, built as `repochat review` builds it, without the model; and the
    files left out, with why."""
    settings = settings_of(root)
    update_index(root, settings)
    store = IndexStore.open(settings.index_path(root))
    selection = select_files(store, load_change(root, target), settings)
    return prompt_text(build_context(store, selection), PROMPT_TOKENS), selection.not_reviewed


def test_a_commit_that_removes_leaked_keys_sends_none_of_them_to_the_model(
        make_repo: Callable[..., Path]) -> None:
    stripe, db_password, ini_password = "sk_live_" + token(ALNUM, 40), password(), password()
    body = pem_body()
    env_password = password()
    k8s_value = base64.b64encode(token(ALNUM, 24).encode()).decode()
    needles = [stripe, db_password, ini_password, env_password, k8s_value, *body]
    root = make_repo({
        "app/payments.py": ('import os\n\nSTRIPE_KEY = "' + stripe + '"\n'
                            'DATABASE_URL = "postgres://app:' + db_password + '@db.prod.internal/app"\n\n\n'
                            "def charge(amount):\n    return {\"amount\": amount, \"key\": STRIPE_KEY}\n"),
        "app/signing.py": ('SIGNING_KEY = """-----BEGIN EC PRIVATE KEY-----\n' + "\n".join(body)
                           + '\n-----END EC PRIVATE KEY-----\n"""\n\n\ndef sign(data):\n    return data\n'),
        "config/app.ini": f"[db]\nhost = db.internal\npassword = {ini_password}\ntimeout = 30\n",
        ".env": f"DB_PASSWORD={env_password}\n",
        "deploy/secret.yaml": f"apiVersion: v1\nkind: Secret\ndata:\n  api: {k8s_value}\n",
    })
    write_files(root, {
        "app/payments.py": ('import os\n\nSTRIPE_KEY = os.environ["STRIPE_KEY"]\n'
                            'DATABASE_URL = os.environ["DATABASE_URL"]\n\n\n'
                            "def charge(amount):\n    return {\"amount\": amount, \"key\": STRIPE_KEY}\n"),
        "app/signing.py": ('import os\n\nSIGNING_KEY = os.environ["SIGNING_KEY"]\n\n\n'
                           "def sign(data):\n    return data\n"),
        "config/app.ini": "[db]\nhost = db.internal\npassword = %(DB_PASSWORD)s\ntimeout = 30\n",
    })
    git(root, "mv", ".env", "env.txt")  # renamed away from a secret path: still a secret
    git(root, "rm", "-q", "deploy/secret.yaml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "move credentials to the environment")
    prompt, not_reviewed = review_prompt(root, "HEAD")
    assert [n for n in needles if n in prompt] == []
    assert prompt.count(WITHHELD) >= 3 + len(body)  # the removed lines were there, withheld one by one
    assert 'STRIPE_KEY = os.environ["STRIPE_KEY"]' in prompt and "app/signing.py" in prompt  # still reviewed
    assert not_reviewed.get("env.txt") == "secret" and not_reviewed.get("deploy/secret.yaml") == "deleted"


def test_a_staged_secret_reaches_neither_the_review_nor_its_whole_repository_view(
        make_repo: Callable[..., Path]) -> None:
    root = make_repo({"app/main.py": "def main():\n    return 1\n", "app/util.py": "def twice(x):\n    return 2 * x\n"})
    value, key = password(), "hf_" + token(ALNUM, 34)
    write_files(root, {"config/prod.ini": f"[db]\npassword = {value}\n",
                       "app/main.py": f'HF = "{key}"\n\n\ndef main():\n    return 2\n'})
    git(root, "add", "-A")
    prompt, not_reviewed = review_prompt(root, STAGED)
    assert value not in prompt and key not in prompt
    assert not_reviewed == {"config/prod.ini": "secret", "app/main.py": "secret"}
    whole = load_repository(root, settings_of(root), side_contents(root, ":"))  # the staged side, as review reads it
    assert all(value not in f.text and key not in f.text for f in whole.files)
    assert [f.path for f in whole.files] == ["app/util.py"]
