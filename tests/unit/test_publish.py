"""Releases: immutable, atomic, idempotent, with lineage; the commands analysts use on them (a
publisher killed at any moment: tests/system/test_publish.py)."""

from __future__ import annotations

import json
import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indices.cli import main
from indices.core.published import list_versions, read_manifest
from indices.core.reference import file_sha256
from indices.releases.publish import ReleaseExists, move_into_place
from tests.helpers import publish, raw_input, table


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
