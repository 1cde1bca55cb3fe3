"""Where the index lives: a folder on this machine, or a prefix in an S3 bucket (``index_uri = "s3://bucket/prefix"``).

LanceDB reads and writes s3:// itself, given storage options. What the index keeps beside its tables (meta.json: the
published snapshot of table versions, the embedder, the compaction record) goes under the same prefix, so a second
machine reading the bucket opens exactly the versions the writer published. An S3 PUT replaces an object whole, so
meta.json is replaced atomically there without the temporary file and rename a local folder needs.

``ObjectFolder`` offers the few operations of ``pathlib.Path`` that the store uses on its own folder (``/``, parent,
is_file, is_dir, iterdir, glob, read_text, write_text, mkdir), so the store and its callers treat both places alike.
Endpoint, region and credentials come from the usual AWS variables. The write lock stays a flock on this machine
(``local_folder``): S3 has no lock that is freed when its holder dies, so one writer per prefix (a CI job) is the
supported setup, and readers elsewhere run with ``index_read_only``.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar, Union

import platformdirs

from ..errors import ConfigError, IndexStoreError

if TYPE_CHECKING:  # lancedb is imported by connect() only: a command that never opens the index skips it
    from lancedb.db import DBConnection

_URI = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?")
T = TypeVar("T")
CONNECT_TIMEOUT_S = 5  # an endpoint that does not answer this fast is down, not slow
REQUEST_TIMEOUT_S = 60
MAX_ATTEMPTS = 3


class IndexReadOnly(IndexStoreError):
    """An update was asked of an index opened read-only (``index_read_only``)."""


class IndexUnreachable(IndexStoreError):
    """The object store holding the index cannot be used: down, no such bucket, or the credentials refused. Not
    damage: nothing is rebuilt on it."""


@dataclass(frozen=True)
class S3Access:
    """How to reach the store, from the AWS variables: endpoint (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), region
    (AWS_REGION, AWS_DEFAULT_REGION) and keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Keys
    left unset fall to the SDKs' own chains (an instance profile)."""

    endpoint: str = ""
    region: str = ""
    key_id: str = ""
    secret: str = field(default="", repr=False)  # never in a log or a traceback
    token: str = field(default="", repr=False)

    @staticmethod
    def from_environ(environ: Mapping[str, str]) -> "S3Access":
        return S3Access(endpoint=environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL", ""),
                        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION", ""),
                        key_id=environ.get("AWS_ACCESS_KEY_ID", ""), secret=environ.get("AWS_SECRET_ACCESS_KEY", ""),
                        token=environ.get("AWS_SESSION_TOKEN", ""))

    def where(self) -> str:
        return self.endpoint or "AWS S3"

    def lance_options(self) -> dict[str, str]:
        """LanceDB's storage_options (object_store keys, plus lance's retry bounds)."""
        options = {"aws_endpoint": self.endpoint, "aws_region": self.region, "aws_access_key_id": self.key_id,
                   "aws_secret_access_key": self.secret, "aws_session_token": self.token,
                   "allow_http": "true" if self.endpoint.startswith("http://") else "",
                   "connect_timeout": f"{CONNECT_TIMEOUT_S}s", "timeout": f"{REQUEST_TIMEOUT_S}s",
                   "client_max_retries": str(MAX_ATTEMPTS), "client_retry_timeout": str(REQUEST_TIMEOUT_S)}
        return {key: value for key, value in options.items() if value}

    def filesystem(self) -> Any:
        """A pyarrow S3 filesystem for the files beside the tables (pyarrow is LanceDB's own dependency)."""
        from pyarrow import fs

        scheme, _, host = self.endpoint.partition("://")
        return fs.S3FileSystem(access_key=self.key_id or None, secret_key=self.secret or None,
                               session_token=self.token or None, region=self.region or None,
                               endpoint_override=host or None, scheme=scheme if host else None,
                               connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
                               retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS))


@functools.lru_cache(maxsize=4)
def _filesystem(access: S3Access) -> Any:
    """One pyarrow filesystem per way in: a server opens the index many times."""
    return access.filesystem()


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of an s3:// URI, or a one-line ConfigError."""
    match = _URI.fullmatch(uri.strip().rstrip("/"))
    if not match:
        raise ConfigError(f"index_uri must be s3://bucket/prefix, not {uri!r} (a local folder is index_dir)")
    return match.group(1), (match.group(2) or "").strip("/")


class ObjectFolder:
    """A folder under s3://bucket/prefix, with the Path operations the index uses on its own folder."""

    def __init__(self, bucket: str, key: str, access: S3Access, _fs: Any = None) -> None:
        self.bucket = bucket
        self.key = key.strip("/")
        self.access = access
        self._fs = _fs if _fs is not None else _filesystem(access)

    @staticmethod
    def of(uri: str, environ: Mapping[str, str] | None = None) -> "ObjectFolder":
        bucket, key = parse_uri(uri)
        return ObjectFolder(bucket, key, S3Access.from_environ(os.environ if environ is None else environ))

    # --- names -----------------------------------------------------------------------------------------------------
    def __truediv__(self, name: str) -> "ObjectFolder":
        return ObjectFolder(self.bucket, f"{self.key}/{name}" if self.key else name, self.access, self._fs)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1] if self.key else self.bucket

    @property
    def parent(self) -> "ObjectFolder":
        return ObjectFolder(self.bucket, self.key.rpartition("/")[0], self.access, self._fs)

    def resolve(self) -> "ObjectFolder":
        return self

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"ObjectFolder({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectFolder) and str(self) == str(other) and self.access == other.access

    def __hash__(self) -> int:
        return hash(str(self))

    # --- the store's few file operations ---------------------------------------------------------------------------
    def is_file(self) -> bool:
        return self._type() == "File"

    def is_dir(self) -> bool:
        return self._type() == "Directory"

    def iterdir(self) -> Iterator["ObjectFolder"]:
        from pyarrow import fs

        infos = self._call("list", lambda: self._fs.get_file_info(fs.FileSelector(self._path, allow_not_found=True)))
        for info in infos:
            yield self / info.base_name

    def glob(self, pattern: str) -> Iterator["ObjectFolder"]:
        """Entries of this folder whose names match (one level: all the store asks for)."""
        return (entry for entry in self.iterdir() if fnmatch.fnmatchcase(entry.name, pattern))

    def read_text(self, encoding: str = "utf-8") -> str:
        def read() -> bytes:
            with self._fs.open_input_stream(self._path) as stream:
                return bytes(stream.read())
        return self._call("read", read).decode(encoding)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        """One PUT: readers see the old object or the new one, never a part."""
        data = text.encode(encoding)

        def write() -> None:
            with self._fs.open_output_stream(self._path) as stream:
                stream.write(data)
        self._call("write", write)
        return len(data)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is under it. The bucket must exist already."""
        self._bucket_check()

    def remove_tree(self) -> None:
        self._call("delete", lambda: self._fs.delete_dir(self._path))

    # --- plumbing --------------------------------------------------------------------------------------------------
    @property
    def _path(self) -> str:
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def _type(self) -> str:
        kind = self._call("read", lambda: self._fs.get_file_info(self._path)).type.name
        if kind == "NotFound":
            self._bucket_check()  # a missing bucket says so, rather than "no index yet"
        return str(kind)

    def _bucket_check(self) -> None:
        if self._call("read", lambda: self._fs.get_file_info(self.bucket)).type.name == "NotFound":
            raise missing_bucket(self)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except OSError as exc:
            raise unreachable(self, what, exc) from exc


def unreachable(folder: ObjectFolder, what: str, exc: BaseException) -> IndexUnreachable:
    """The one-line error for a failed request to the store."""
    text = " ".join(str(exc).split())
    return access_problem(folder, exc) or \
        IndexUnreachable(f"cannot {what} {folder} at {folder.access.where()}: {text[:200]}")


def access_problem(folder: ObjectFolder, exc: BaseException) -> IndexUnreachable | None:
    """What an error of pyarrow or LanceDB says when it is about reaching the store (down, refused credentials, no
    such bucket) rather than about what was read; None otherwise."""
    lowered = " ".join(str(exc).split()).lower()
    where = folder.access.where()
    if any(word in lowered for word in ("access denied", "access_denied", "forbidden", "403", "invalidaccesskeyid",
                                        "signaturedoesnotmatch", "access key", "credentials")):
        return IndexUnreachable(f"the object store at {where} refused the credentials for {folder} (check "
                                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if any(word in lowered for word in ("connect", "network", "dns", "resolve", "timed out", "timeout",
                                        "dispatch", "refused", "unreachable")):
        return IndexUnreachable(f"cannot reach the object store at {where} for {folder} (check AWS_ENDPOINT_URL "
                                f"and the network)")
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered:
        return missing_bucket(folder)
    return None


def missing_bucket(folder: ObjectFolder) -> IndexUnreachable:
    return IndexUnreachable(f"the bucket {folder.bucket!r} does not exist at {folder.access.where()}; create it first")


IndexDir = Union[Path, ObjectFolder]


def index_folder(uri: str, local: Path) -> IndexDir:
    """The index's folder: ``uri`` (s3://...) when set, else the local folder."""
    return ObjectFolder.of(uri) if uri else local


def in_bucket(folder: IndexDir) -> bool:
    return isinstance(folder, ObjectFolder)


def connect(folder: IndexDir) -> DBConnection:
    """LanceDB's connection to the tables under ``folder``."""
    import lancedb

    if isinstance(folder, ObjectFolder):
        return lancedb.connect(str(folder), storage_options=folder.access.lance_options())
    return lancedb.connect(str(folder))


def remove_tree(folder: IndexDir) -> None:
    if isinstance(folder, ObjectFolder):
        folder.remove_tree()
    else:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)


def local_folder(folder: IndexDir) -> Path:
    """Where this machine keeps the write lock of the index in ``folder``: the folder itself, or for an index in a
    bucket a folder of the user's cache named after the URI."""
    if not isinstance(folder, ObjectFolder):
        return folder
    digest = hashlib.blake2b(f"{folder.access.where()} {folder}".encode(), digest_size=8).hexdigest()
    return Path(platformdirs.user_cache_dir("repochat")) / "index-locks" / digest


def refuse_writes(read_only: bool, folder: IndexDir) -> None:
    if read_only:
        raise IndexReadOnly(f"the index at {folder} is read-only here (index_read_only / --read-only); update it "
                            f"where it is built")
