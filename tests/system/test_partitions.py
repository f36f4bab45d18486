"""Runs of the partitioned pipeline started together, each in a process of its own: two `indices
run` on the same folders and instance leave whole releases with a single run's figures, and runs
creating a new Dagster home together set it up once (the partitions themselves:
tests/integration/test_partitions.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from indices.core.published import list_versions
from indices.core.settings import Settings
from pipelines.run import run_main_job
from tests.conftest import REPO
from tests.helpers import catalog_rows

AUTHORITIES = ["E06000001", "E06000017", "E06000053"]  # of the demo extracts


def test_two_runs_started_at_once_leave_intact_releases(tmp_path):
    """The same pipeline started twice together, on the same folders and Dagster instance:
    both succeed, each dataset is published once, whole, with the figures of a single run."""
    shared = Settings.resolve(REPO / "data" / "raw", tmp_path / "warehouse", tmp_path / "published")
    (tmp_path / "dagster_home").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    command = [
        str(Path(sys.executable).with_name("indices")),
        "run",
        f"--raw-dir={shared.raw_dir}",
        f"--warehouse-dir={shared.warehouse_dir}",
        f"--publish-dir={shared.publish_dir}",
    ]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs

    datasets = [d for d in os.listdir(shared.publish_dir) if not d.startswith((".", "catalog"))]
    assert len(datasets) == 9
    for dataset in datasets:
        assert list_versions(shared.publish_dir, dataset) == ["v000001"]  # the second: unchanged
        release = shared.publish_dir / dataset / "v000001"
        manifest = json.loads((release / "manifest.json").read_text())
        assert pq.ParquetFile(release / "data.parquet").metadata.num_rows == manifest["row_count"]
    assert not list((shared.publish_dir / ".staging").glob("*"))
    assert (shared.warehouse_dir / "pseudonym.key").is_file()  # one key, and no half-made one
    assert not list(shared.warehouse_dir.glob(".pseudonym.key.*"))

    alone = Settings.resolve(shared.raw_dir, tmp_path / "w1", tmp_path / "p1")
    assert run_main_job(alone, instance=dg.DagsterInstance.ephemeral()).success
    for dataset in ("frailty_lsoa", "frailty_lad", "frailty_england", "ingest_ledger"):
        query = f"SELECT * FROM {dataset}"
        together, single = catalog_rows(shared, query), catalog_rows(alone, query)
        assert sorted(together, key=str) == sorted(single, key=str) and together


def test_runs_starting_together_on_a_new_instance_set_it_up_once(tmp_path):
    """Without one process at a time, several runs creating a new SQLite home together fail
    (creating its tables twice, or adding the same partitions twice) most of the time."""
    code = (
        "import sys; from indices.core.settings import Settings; from pipelines.run import prepare; "
        "instance, tags = prepare(Settings.resolve(*sys.argv[1:4])); "
        "print(instance.get_dynamic_partitions('authority'), tags)"
    )
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"
        folders = [str(REPO / "data" / "raw"), str(tmp_path / "w"), str(tmp_path / "p")]
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", code, *folders],
                env={**os.environ, "DAGSTER_HOME": str(home)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        results = [start.communicate(timeout=120) for start in starts]
        assert [start.returncode for start in starts] == [0] * 4, [r[1][-500:] for r in results]
        assert {out for out, _ in results} == {results[0][0]}
        assert str(AUTHORITIES).encode() in results[0][0]
