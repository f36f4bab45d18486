"""The warehouse and the releases on an object store: a real S3-compatible server (moto) on
127.0.0.1, read by DuckDB through the fsspec filesystem (no DuckDB extension). The same code path on fsspec's
memory filesystem, without a server: tests/unit/test_object_storage.py."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from indices.core import leftovers, storage
from indices.core.published import list_datasets, list_versions, pointer_path, read_manifest
from indices.core.settings import Settings
from indices.releases.lineage import prune_releases
from tests.conftest import DEMO_RAW
from tests.helpers import analyst_query, publish, table


def test_a_release_on_s3_is_published_listed_and_read_by_duckdb(bucket, tmp_path):
    root = f"{bucket}/published"
    first = publish(root, table(10), [])
    again = publish(root, table(10), [])
    second = publish(root, table(10, shift=3), [{"role": "r", "path": "x", "sha256": "1"}])
    assert (first.version, again.published, second.version) == ("v000001", False, "v000002")
    assert list_datasets(root) == ["demo"] and list_versions(root, "demo") == ["v000001", "v000002"]
    assert read_manifest(root, "demo", "v000002")["row_count"] == 10
    assert str(second.data_path) == f"{root}/demo/v000002/data.parquet"
    rows = analyst_query(root, "SELECT count(*), min(rank) FROM demo", tmp_path)
    assert rows == [(10, 1)]
    storage.rm(f"{root}/catalog.duckdb")  # a publish that publishes nothing brings it back
    assert not publish(
        root, table(10, shift=3), [{"role": "r", "path": "x", "sha256": "1"}]
    ).published
    assert storage.exists(f"{root}/catalog.duckdb")
    releases = analyst_query(root, "SELECT list(version ORDER BY version) FROM releases", tmp_path)
    assert releases == [(["v000001", "v000002"],)]
    with pytest.raises(FileExistsError):  # a pointer is never overwritten
        storage.write_text(pointer_path(root, "demo", "v000001"), "{}", exclusive=True)
    assert prune_releases(root, "demo", keep=1) == ["v000001"]
    assert list_versions(root, "demo") == ["v000002"]
    assert not storage.exists(f"{root}/demo/v000001")


def test_a_half_written_release_is_invisible_and_its_number_skipped(bucket, tmp_path, monkeypatch):
    root = f"{bucket}/published"
    publish(root, table(5), [])
    # A run killed after uploading its files but before writing the pointer.
    storage.write_bytes(f"{root}/demo/v000002/data.parquet", b"partial")
    assert list_versions(root, "demo") == ["v000001"]
    assert analyst_query(root, "SELECT count(*) FROM demo", tmp_path) == [(5,)]
    third = publish(root, table(5, shift=1), [{"role": "r", "path": "x", "sha256": "2"}])
    assert third.version == "v000003"
    assert list_versions(root, "demo") == ["v000001", "v000003"]
    # No lock keeps publishers out on an object store: a folder without a pointer may be one a
    # live publisher is still uploading, so prune clears it only once it is old.
    prune_releases(root, "demo", keep=2)
    assert storage.exists(f"{root}/demo/v000002/data.parquet")
    monkeypatch.setattr(leftovers, "STALE_AFTER", -1)
    prune_releases(root, "demo", keep=2)
    assert not storage.exists(f"{root}/demo/v000002")


def test_a_version_another_publisher_took_is_not_overwritten(bucket, monkeypatch):
    root = f"{bucket}/published"
    publish(root, table(5), [])
    # Another publisher took v000002 after this one listed the folders.
    storage.write_text(f"{root}/demo/v000002/manifest.json", "{}")
    monkeypatch.setattr("indices.releases.publish.release_folders", lambda *args: [])
    mine = publish(root, table(5, shift=2), [{"role": "r", "path": "x", "sha256": "3"}])
    assert mine.version == "v000003"
    assert storage.read_text(f"{root}/demo/v000002/manifest.json") == "{}"
    assert read_manifest(root, "demo", "v000003")["version"] == "v000003"


def test_the_whole_job_on_s3_publishes_what_a_local_run_does(bucket, tmp_path):
    from pipelines.run import run_main_job

    local = Settings.resolve(DEMO_RAW, tmp_path / "warehouse", tmp_path / "published")
    remote = Settings.resolve(DEMO_RAW, f"{bucket}/warehouse", f"{bucket}/published")
    assert remote.publish_dir == f"{bucket}/published"
    for settings in (local, remote):
        result = run_main_job(settings, instance=dg.DagsterInstance.ephemeral())
        assert result.success
        assert all(c.passed for c in result.get_asset_check_evaluations())
    query = "SELECT * EXCLUDE (reference_date) FROM frailty_lad ORDER BY lad19_code"
    expected = duckdb.connect(str(local.publish_dir / "catalog.duckdb"), read_only=True)
    figures = analyst_query(remote.publish_dir, query, tmp_path)
    assert figures == expected.execute(query).fetchall() and len(figures) == 3
    assert list_versions(remote.publish_dir, "frailty_index_lsoa") == ["v000001"]
    assert storage.exists(f"{bucket}/warehouse/measures/persons/E06000001.parquet")
    assert not storage.exists(f"{bucket}/published/.staging")
