"""A fixed set of planted bugs for the review tests and tests/bench/bench_review.py.

Each case is a small repository (committed), then one staged edit that plants a bug. ``lines`` are the lines of
``path`` in the edited file where a correct finding may point: the buggy line itself, and for a removed check the
lines around the place it was taken from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlantedBug:
    name: str
    kind: str  # off-by-one, misspelled attribute, removed null check
    files: dict[str, str]  # the repository before the change
    edit: dict[str, str]  # path -> new content (staged)
    path: str
    lines: frozenset[int]
    cause: tuple[str, ...] = ()  # words a message naming the actual cause contains (any one, case-insensitive)

    def explained_by(self, message: str) -> bool:
        return any(word.lower() in message.lower() for word in self.cause)


PAGES = '''"""Split a list into pages."""


def paginate(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def last_page(items, size):
    pages = paginate(items, size)
    if not pages:
        return []
    return pages[len(pages) - 1]
'''
PAGES_APP = '''from pages import last_page, paginate


def show_tail(rows):
    for row in last_page(rows, 10):
        print(row)


def count_pages(rows):
    return len(paginate(rows, 10))
'''

ACCOUNT = '''"""Bank accounts."""


class Account:
    def __init__(self, owner):
        self.owner = owner
        self.balance = 0
        self.history = []

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.balance += amount
        self.history.append(("deposit", amount))

    def withdraw(self, amount):
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.balance -= amount
        self.history.append(("withdraw", amount))
'''
BANK = '''from account import Account


def open_account(owner, initial):
    account = Account(owner)
    account.deposit(initial)
    return account
'''

USERS = '''"""User lookup."""


class User:
    def __init__(self, name, email):
        self.name = name
        self.email = email


def find_user(users, name):
    for user in users:
        if user.name == name:
            return user
    return None


def display_name(user):
    if user is None:
        return "anonymous"
    return user.name.title()
'''
GREETER = '''from users import display_name, find_user


def greet(users, name):
    user = find_user(users, name)  # None when nobody has that name
    return "Hello, " + display_name(user)
'''

READINGS = '''"""Sensor readings."""


def moving_sum(values, window):
    sums = []
    for start in range(len(values) - window + 1):
        sums.append(sum(values[start:start + window]))
    return sums


def peak(values):
    best = values[0]
    for i in range(1, len(values)):
        if values[i] > best:
            best = values[i]
    return best
'''
REPORT = '''from readings import moving_sum, peak


def summary(values):
    return {"peak": peak(values), "sums": moving_sum(values, 3)}
'''

CONFIG = '''"""Settings for the HTTP client."""


class ClientConfig:
    def __init__(self, base_url, timeout=10.0, retries=3):
        self.base_url = base_url
        self.timeout = timeout
        self.retries = retries
'''
CLIENT = '''from config import ClientConfig


class Client:
    def __init__(self, config: ClientConfig):
        self.config = config

    def request_options(self):
        return {"timeout": self.config.timeout, "retries": self.config.retries}
'''

CACHE = '''"""A small cache in front of a loader."""


class Cache:
    def __init__(self, loader):
        self.loader = loader
        self.entries = {}

    def get(self, key):
        value = self.entries.get(key)
        if value is None:
            value = self.loader(key)
            self.entries[key] = value
        if value is None:
            return ""
        return value.strip()
'''
CACHE_USER = '''from cache import Cache


def load_title(key):
    return None if key.startswith("draft") else key.upper()


titles = Cache(load_title)
'''

CASES: tuple[PlantedBug, ...] = (
    PlantedBug("last_page index", "off-by-one", {"pages.py": PAGES, "app.py": PAGES_APP},
               {"pages.py": PAGES.replace("pages[len(pages) - 1]", "pages[len(pages)]")}, "pages.py",
               frozenset({12}), ("len(pages)", "index", "range", "off", "past the end", "- 1")),
    PlantedBug("deposit balance", "misspelled attribute", {"account.py": ACCOUNT, "bank.py": BANK},
               {"account.py": ACCOUNT.replace("        self.balance += amount", "        self.balanse += amount")},
               "account.py", frozenset({13}), ("balanse", "balance", "spell", "typo")),
    PlantedBug("display_name check", "removed null check", {"users.py": USERS, "greeter.py": GREETER},
               {"users.py": USERS.replace('    if user is None:\n        return "anonymous"\n', "")},
               "users.py", frozenset({17, 18}), ("None", "null", "check")),
    PlantedBug("peak loop bound", "off-by-one", {"readings.py": READINGS, "report.py": REPORT},
               {"readings.py": READINGS.replace("range(1, len(values))", "range(1, len(values) + 1)")},
               "readings.py", frozenset({13}), ("range", "len(values)", "index", "off", "+ 1", "bound")),
    PlantedBug("client timeout", "misspelled attribute", {"config.py": CONFIG, "client.py": CLIENT},
               {"client.py": CLIENT.replace('"timeout": self.config.timeout', '"timeout": self.config.timout')},
               "client.py", frozenset({9}), ("timout", "timeout", "spell", "typo")),
    PlantedBug("cache loader None", "removed null check", {"cache.py": CACHE, "titles.py": CACHE_USER},
               {"cache.py": CACHE.replace('        if value is None:\n            return ""\n', "")},
               "cache.py", frozenset({9, 13, 14}), ("None", "null", "check")),
)

CLEAN_EDIT = {"pages.py": PAGES.replace('"""Split a list into pages."""', '"""Split a list into pages of equal size."""')
              + '\n\ndef page_count(items, size):\n    return (len(items) + size - 1) // size\n'}

# Correct changes to the same repositories (a false alarm is a finding at 'error' on one of them).
CLEAN_EDITS: tuple[tuple[str, dict[str, str], dict[str, str]], ...] = (
    ("page_count added", CASES[0].files, CLEAN_EDIT),
    ("constant changed", {"a.py": "x = 1\n"}, {"a.py": "x = 2\n"}),
    ("withdraw message", CASES[1].files, {"account.py": ACCOUNT.replace('"insufficient funds"',
                                                                        '"insufficient funds for this withdrawal"')}),
    ("greet punctuation", CASES[2].files, {"greeter.py": GREETER.replace('"Hello, " + display_name(user)',
                                                                         '"Hello, " + display_name(user) + "!"')}),
    ("peak renamed local", CASES[3].files, {"readings.py": READINGS.replace("best", "highest")}),
    ("retries default", CASES[4].files, {"config.py": CONFIG.replace("retries=3", "retries=5")}),
)
