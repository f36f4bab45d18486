"""The release code path on an fsspec filesystem other than the local disk, without a server:
fsspec's in-memory one (a real S3-compatible server: tests/system/test_object_storage.py)."""

from __future__ import annotations

import uuid

import duckdb
import fsspec

from indices.core.published import list_versions
from tests.helpers import publish, table


def test_the_same_code_path_on_memory(tmp_path):
    root = f"memory://indices-{uuid.uuid4().hex[:8]}/published"
    publish(root, table(7), [])
    assert list_versions(root, "demo") == ["v000001"]
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("memory"))
    assert con.execute(f"SELECT count(*) FROM '{root}/demo/v000001/data.parquet'").fetchone() == (
        7,
    )
