"""A publish killed at any moment, in a process of its own: the previous release stays whole and
the next publish brings the catalog up to date (the other release guarantees are in
tests/unit/test_publish.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from indices.core.published import list_versions, read_manifest
from indices.core.reference import file_sha256
from tests.helpers import catalog_agrees, publish, table

KILLED_PUBLISHER = """
import sys
from datetime import date
from pathlib import Path
import pyarrow as pa
from indices.releases.publish import publish_release
root, shift = Path(sys.argv[1]), int(sys.argv[2])
if sys.argv[3:] == ["after-pointer"]:  # killed right after its pointer, before its catalog
    import os, signal
    import indices.releases.publish
    indices.releases.publish.rebuild_catalog = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
n = 2_000_000
data = pa.table({"lsoa11_code": [f"E{i:08d}" for i in range(n)],
                 "rank": [(i + shift) % n + 1 for i in range(n)]})
print("writing", flush=True)
publish_release(root, "big", data, description="d", column_descriptions={},
                sort_by=["lsoa11_code"], reference_date=date(2025, 3, 31), inputs=[])
"""


def assert_intact(root: Path) -> None:
    """Every visible release is whole: its files match its manifest; the catalog answers."""
    for version in list_versions(root, "big"):
        manifest = read_manifest(root, "big", version)
        for item in manifest["files"]:
            assert file_sha256(root / "big" / version / item["path"]) == item["sha256"]
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM big").fetchone()[0] == 2_000_000


def leftovers(root: Path) -> list[str]:
    """Staging folders, catalog temporary files and logs in a publish folder."""
    found = [p for p in (root / ".staging").glob("*")] + list(root.glob(".catalog.duckdb.*"))
    return sorted(p.name for p in found + list(root.glob("*.wal")))


def test_a_publish_killed_at_any_moment_leaves_the_previous_release(tmp_path):
    root = tmp_path / "published"
    subprocess.run([sys.executable, "-c", KILLED_PUBLISHER, str(root), "0"], check=True)
    assert list_versions(root, "big") == ["v000001"]
    for delay in (0.3, 1.0, 1.7, 2.4, "after-pointer"):
        before = list_versions(root, "big")
        moment = [] if isinstance(delay, float) else [delay]
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_PUBLISHER, str(root), str(len(before)), *moment],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "writing"
        if moment:
            assert process.wait() == -signal.SIGKILL
            assert list_versions(root, "big") == [*before, f"v{len(before) + 1:06d}"]
            assert not catalog_agrees(root)  # its catalog still shows the previous release
        else:
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert_intact(root)
        # The next publish call, even one publishing nothing, brings the catalog up to date
        # with the pointers and clears what the killed run left.
        publish(root, table(3), [], dataset="small")
        assert catalog_agrees(root)
        assert leftovers(root) == []
    versions = list_versions(root, "big")
    assert versions[0] == "v000001"
    assert versions == [f"v{i:06d}" for i in range(1, len(versions) + 1)]
