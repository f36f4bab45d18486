"""The same definitions on a distributed executor, without code changes: the partitioned main
job on Dagster's Dask executor, against a local Dask cluster of several worker processes on
127.0.0.1, with the warehouse and the releases on the local S3-compatible server (moto),
publishes the figures an in-process run on local folders does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from distributed import Client, LocalCluster

from indices.core.settings import Settings
from pipelines.executors import DASK_ADDRESS_ENV, EXECUTOR_ENV
from pipelines.partitions import range_tags
from tests.conftest import DEMO_RAW
from tests.helpers import analyst_query, free_port

WORKERS = 3
# Every published figure of these datasets, all rows; the catalog's views name the latest.
FIGURES = {
    "frailty_lad": "lad19_code",
    "frailty_lsoa": "lsoa11_code",
    "frailty_england": "1",
    "frailty_index_lad": "lad19_code",
}


@pytest.fixture(scope="module")
def dask_env(s3_server) -> dict[str, str]:
    """What the run and every worker see: the S3 server's endpoint and credentials (set by
    `s3_server`), the Dask executor, and the scheduler's address, chosen before it starts
    because workers import the definitions, which read it."""
    address = f"tcp://127.0.0.1:{free_port()}"
    return {**os.environ, EXECUTOR_ENV: "dask", DASK_ADDRESS_ENV: address}


@pytest.fixture(scope="module")
def dask_cluster(dask_env):
    """A local Dask cluster: its scheduler on 127.0.0.1 and `WORKERS` single-threaded worker
    processes (which inherit the S3 variables and get the executor's); closed afterwards, which
    stops its processes."""
    port = int(dask_env[DASK_ADDRESS_ENV].rsplit(":", 1)[1])
    cluster = LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=port,
        dashboard_address=None,
        env={EXECUTOR_ENV: "dask", DASK_ADDRESS_ENV: dask_env[DASK_ADDRESS_ENV]},
    )
    client = Client(cluster)
    try:
        client.wait_for_workers(WORKERS, timeout=60)
        assert cluster.scheduler_address == dask_env[DASK_ADDRESS_ENV]
        yield client
    finally:
        client.close()
        cluster.close()


def published_figures(query_one) -> dict[str, list[tuple]]:
    return {
        name: query_one(f"SELECT * FROM {name} ORDER BY {order}") for name, order in FIGURES.items()
    }


def test_the_partitioned_job_on_dask_publishes_what_an_in_process_run_does(
    dask_env, dask_cluster, bucket, tmp_path, monkeypatch
):
    from pipelines.run import run_main_job

    monkeypatch.delenv(EXECUTOR_ENV, raising=False)  # this process runs its job itself

    home = tmp_path / "dagster_home"  # a persistent instance, as the Dask executor needs
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    warehouse, publish = f"{bucket}/warehouse", f"{bucket}/published"
    command = [str(Path(sys.executable).with_name("indices")), "run", "--raw-dir", str(DEMO_RAW)]
    log = tmp_path / "run.log"
    with open(log, "w") as output:
        run = subprocess.Popen(
            [*command, "--warehouse-dir", warehouse, "--publish-dir", publish],
            env={**dask_env, "DAGSTER_HOME": str(home)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Meanwhile, the same job in this process, on local folders.
        local = Settings.resolve(DEMO_RAW, tmp_path / "warehouse", tmp_path / "published")
        result = run_main_job(local, instance=dg.DagsterInstance.ephemeral(), quiet=True)
        run.wait(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert result.success
    assert run.returncode == 0, log.read_text()

    # Every step ran in a Dask worker process, spread over more than one of them.
    workers = set(dask_cluster.run(os.getpid).values())
    assert len(workers) == WORKERS and run.pid not in workers and os.getpid() not in workers
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records()
        dagster_run = record.dagster_run
        assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert dagster_run.job_name == "main"
        authorities = instance.get_dynamic_partitions("authority")
        assert authorities == ["E06000001", "E06000017", "E06000053"]
        assert dagster_run.tags == dagster_run.tags | range_tags(authorities)
        starts = instance.all_logs(dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
        successes = instance.all_logs(dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    step_pids = {e.dagster_event.step_key: e.dagster_event.pid for e in starts}
    assert len(step_pids) == len(starts) == len(successes) > WORKERS
    assert set(step_pids.values()) <= workers
    assert len(set(step_pids.values())) > 1

    # The same steps, and the same figures, as the in-process run.
    assert {e.step_key for e in result.all_events if e.is_step_success} == set(step_pids)
    expected = duckdb.connect(str(local.publish_dir / "catalog.duckdb"), read_only=True)
    in_process = published_figures(lambda q: expected.execute(q).fetchall())
    on_dask = published_figures(lambda q: analyst_query(publish, q, tmp_path))
    assert on_dask == in_process
    assert [len(in_process[name]) for name in FIGURES] == [3, 82, 1, 3]
