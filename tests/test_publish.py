"""Releases: immutable, atomic, idempotent, with lineage; the commands analysts use on them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indices.cli import main
from indices.core.published import list_datasets, list_versions, read_manifest
from indices.core.reference import file_sha256
from indices.releases.publish import ReleaseExists, move_into_place, publish_release

D = date(2025, 3, 31)


def table(n: int, shift: int = 0) -> pa.Table:
    codes = [f"E01{i:06d}" for i in range(n)]
    return pa.table({"lsoa11_code": codes, "rank": [(i + shift) % n + 1 for i in range(n)]})


def publish(root: Path, data: pa.Table, inputs: list[dict], dataset: str = "demo"):
    return publish_release(
        root,
        dataset,
        data,
        description="a test dataset",
        column_descriptions={"lsoa11_code": "area", "rank": "rank"},
        sort_by=["lsoa11_code"],
        reference_date=D,
        inputs=inputs,
    )


def raw_input(tmp_path: Path, content: str) -> list[dict]:
    path = tmp_path / "raw" / "gp_events_2025-03-31.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return [{"role": "raw/gp_events", "path": str(path), "sha256": file_sha256(path)}]


def test_unchanged_publishes_nothing_and_a_changed_input_is_named(tmp_path):
    root = tmp_path / "published"
    first = publish(root, table(10), raw_input(tmp_path, "a"))
    again = publish(root, table(10), raw_input(tmp_path, "a"))
    assert first.published and not again.published and again.version == "v000001"
    changed = publish(root, table(10), raw_input(tmp_path, "b"))
    assert changed.published and changed.version == "v000002"
    assert changed.manifest["changed_inputs"] == [
        "raw/gp_events: gp_events_2025-03-31.csv (content changed)"
    ]
    assert list_versions(root, "demo") == ["v000001", "v000002"]
    manifest = read_manifest(root, "demo", "v000002")
    assert manifest["files"][0]["sha256"] == file_sha256(root / "demo" / "v000002" / "data.parquet")
    assert manifest["key"] == ["lsoa11_code"] and manifest["row_count"] == 10


def test_a_release_is_read_only_and_never_overwritten(tmp_path):
    root = tmp_path / "published"
    release = publish(root, table(5), [])
    assert not os.access(release.data_path, os.W_OK) or os.getuid() == 0
    assert (release.data_path.stat().st_mode & 0o222) == 0
    staging = tmp_path / "staged"
    staging.mkdir()
    (staging / "data.parquet").write_text("x")
    with pytest.raises(ReleaseExists):
        move_into_place(staging, release.path)
    assert pq.read_table(release.data_path).num_rows == 5


def test_a_write_that_fails_its_audit_is_not_published(tmp_path):
    root = tmp_path / "published"
    publish(root, table(5), [])
    bad = pa.table({"lsoa11_code": ["E01000001"], "person_id": ["x" * 32]})
    with pytest.raises(Exception, match="person-level column"):
        publish(root, bad, [])
    assert list_versions(root, "demo") == ["v000001"]
    assert not any((root / ".staging").iterdir())


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


def catalog_agrees(root: Path) -> bool:
    """Whether the catalog lists every release the pointers name, the latest marked, and
    answers for each (read independently of the code that builds it)."""
    expected = {
        (dataset, version, version == versions[-1])
        for dataset in list_datasets(root)
        for versions in [list_versions(root, dataset)]
        for version in versions
    }
    try:
        con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
        rows = set(con.execute("SELECT dataset, version, is_latest FROM releases").fetchall())
        for dataset, version, latest in expected:
            for view in [f"{dataset}__{version}", *([dataset] if latest else [])]:
                con.execute(f'SELECT count(*) FROM "{view}"').fetchone()
        con.close()
    except duckdb.Error:
        return False
    return rows == expected


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


def test_lineage_diff_prune_and_openlineage(tmp_path, capsys):
    root = tmp_path / "published"
    publish(root, table(20), raw_input(tmp_path, "a"))
    publish(root, table(20, shift=3), raw_input(tmp_path, "b"))
    common = ["--publish-dir", str(root)]
    assert main(["lineage", "demo", *common]) == 0
    tree = capsys.readouterr().out
    assert tree.startswith("demo v000002") and "raw/gp_events:" in tree and "sha256:" in tree

    assert main(["diff", "demo", "v000001", "v000002", *common]) == 0
    report = capsys.readouterr().out
    assert "0 rows added, 0 removed, 20 changed" in report
    assert "largest rank moves" in report

    events = tmp_path / "lineage.jsonl"
    assert main(["lineage", "demo", "v000001", *common, "--openlineage", str(events)]) == 0
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"]
    assert lines[1]["outputs"][0]["name"] == "demo/v000001"
    assert lines[1]["inputs"][0]["name"] == "gp_events_2025-03-31.csv"

    assert main(["prune", "demo", "--keep", "1", *common]) == 0
    assert list_versions(root, "demo") == ["v000002"]
    con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT list(version) FROM releases").fetchone()[0] == ["v000002"]
    assert main(["prune", "demo", "--keep", "0", *common]) == 2
    assert main(["diff", "demo", "v000001", "v000002", *common]) == 2  # v000001 is gone
