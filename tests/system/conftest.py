"""Fixtures of the system tests: a local S3-compatible server (moto) and a bucket on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import fsspec
import pytest
from s3fs import S3FileSystem

from tests.helpers import free_port


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free local port, with dummy credentials; stopped by its id."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    saved |= {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        # fsspec keeps filesystem instances: one made for another module's server would
        # still point at it.
        S3FileSystem.clear_instance_cache()
        fs = fsspec.filesystem("s3")
        yield fs
    finally:
        server.kill()
        server.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture()
def bucket(s3_server) -> str:
    name = f"indices-{uuid.uuid4().hex[:12]}"
    s3_server.mkdir(name)
    return f"s3://{name}"
