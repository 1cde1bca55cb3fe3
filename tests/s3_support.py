"""A real S3-compatible server on 127.0.0.1 for the tests and benchmarks of the index on object storage: moto's server
mode (`moto[server]`) in a process of its own, reached over HTTP exactly as a bucket elsewhere would be."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

KEYS = {"AWS_ACCESS_KEY_ID": "repochat-test", "AWS_SECRET_ACCESS_KEY": "repochat-test-secret",
        "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def s3_server(enforce_auth: bool = False) -> Iterator[str]:
    """The endpoint (http://127.0.0.1:PORT) of a moto S3 server that lives for the block. ``enforce_auth``: the
    server checks signatures against its own IAM users (it has none, so every key is refused)."""
    port = free_port()
    auth = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if enforce_auth else {}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **auth})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint, server)
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def _wait_until_up(endpoint: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto server exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto server at {endpoint} did not start within 60 s")


def aws_environ(endpoint: str) -> dict[str, str]:
    return {**KEYS, "AWS_ENDPOINT_URL": endpoint}


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=KEYS["AWS_REGION"],
                        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"])


def new_bucket(endpoint: str) -> str:
    name = f"repochat-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def object_keys(endpoint: str, bucket: str, prefix: str = "") -> dict[str, str]:
    """Every object under prefix, by key, with its ETag: what changed in the bucket shows as a difference."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def child_environ(endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a repochat process that reads the bucket (a second machine, in effect)."""
    return {**os.environ, **aws_environ(endpoint), "REPOCHAT_INDEX_KV": "off", **extra}
