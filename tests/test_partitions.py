"""Person-level work partitioned by local authority: each authority's part holds its own
residents, a late social care file reruns its authority alone, and the national counts refuse
parts that are missing or out of date."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from indices.core import warehouse
from indices.core.published import list_versions
from indices.core.settings import Settings
from indices.measures.persons import UNLOCATED
from indices.sources import conformed
from pipelines.definitions import defs
from pipelines.run import run_main_job, settings_run_config
from pipelines.sensors import stale_selection
from tests.conftest import REPO

AUTHORITIES = ["E06000001", "E06000017", "E06000053"]
LATE = "E06000017"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Settings, dg.DagsterInstance]:
    root = tmp_path_factory.mktemp("partitions")
    shutil.copytree(REPO / "data" / "raw", root / "raw")
    settings = Settings.resolve(root / "raw", root / "warehouse", root / "published")
    instance = dg.DagsterInstance.ephemeral()
    assert run_main_job(settings, instance=instance).success
    return settings, instance


def run(settings: Settings, instance: dg.DagsterInstance, selection, partition_key=None):
    keys = selection.resolve(defs.resolve_asset_graph())
    return defs.resolve_job_def("main").execute_in_process(
        run_config=settings_run_config(settings),
        instance=instance,
        asset_selection=list(keys),
        partition_key=partition_key,
        raise_on_error=False,
    )


def test_each_authority_part_holds_its_own_residents(built):
    settings, instance = built
    assert instance.get_dynamic_partitions("authority") == AUTHORITIES
    con = duckdb.connect()
    seen: list[str] = []
    for part in [*AUTHORITIES, UNLOCATED]:
        path = warehouse.measures_part(settings.warehouse_dir, "persons", part)
        lads = {r[0] for r in con.execute(f"SELECT DISTINCT lad19_code FROM '{path}'").fetchall()}
        assert lads == ({None} if part == UNLOCATED else {part})
        seen += [r[0] for r in con.execute(f"SELECT person_id FROM '{path}'").fetchall()]
    assert len(seen) == len(set(seen))  # nobody in two parts
    england = con.execute(
        f"SELECT pop_65plus FROM '{settings.warehouse_dir}/measures/area_counts.parquet' "
        "WHERE level = 'england'"
    ).fetchone()[0]
    everyone = ", ".join(
        f"'{warehouse.measures_part(settings.warehouse_dir, 'persons', p)}'"
        for p in [*AUTHORITIES, UNLOCATED]
    )
    assert (
        england
        == con.execute(
            f"SELECT count(*) FROM read_parquet([{everyone}]) WHERE age >= 65"
        ).fetchone()[0]
    )


def late_file_without_long_term_support(raw: Path) -> Path:
    """A newer social care extract from one authority that ends every long-term service."""
    (current,) = raw.glob(f"asc_cld/asc_cld_{LATE}_*.csv.gz")
    with gzip.open(current) as source:
        lines = source.read().splitlines(keepends=True)
    late = raw / "asc_cld" / f"asc_cld_{LATE}_2025-04-07.csv.gz"
    with gzip.open(late, "wb") as target:
        target.writelines(line for line in lines if b"Long Term Support" not in line)
    return late


def test_a_late_file_reruns_its_authority_alone_and_matches_a_full_run(built, tmp_path):
    settings, instance = built
    before = {
        path: path.stat().st_mtime_ns
        for table in ("persons", "long_term_support")
        for path in (settings.warehouse_dir / "measures" / table).glob("*.parquet")
    }
    old_lts = lts_by_authority(settings)
    assert old_lts[LATE] > 0
    late_file_without_long_term_support(settings.raw_dir)

    # The national counts will not run on the late authority's old part ...
    refused = run(settings, instance, dg.AssetSelection.assets(["measures", "area_counts"]))
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert f"asc_cld of {LATE} conformed from another extract" in message

    # ... and rerunning that one authority, and what is downstream of it, is enough.
    rerun = run(settings, instance, stale_selection(["asc_cld"]), partition_key=LATE)
    assert rerun.success
    changed = {p.name for p, mtime in before.items() if p.stat().st_mtime_ns != mtime}
    assert changed == {f"{LATE}.parquet"}  # its long-term support only; no persons part
    assert list_versions(settings.publish_dir, "frailty_lad")[-1] == "v000002"
    new_lts = lts_by_authority(settings)
    assert new_lts[LATE] == 0
    assert {k: v for k, v in new_lts.items() if k != LATE} == {
        k: v for k, v in old_lts.items() if k != LATE
    }

    # The same figures as a whole run from scratch on the same extracts.
    fresh = Settings.resolve(settings.raw_dir, tmp_path / "warehouse", tmp_path / "published")
    assert run_main_job(fresh, instance=dg.DagsterInstance.ephemeral()).success
    query = "SELECT * EXCLUDE (reference_date) FROM frailty_lad ORDER BY lad19_code"
    assert published(settings, query) == published(fresh, query)


def lts_by_authority(settings: Settings) -> dict[str, int]:
    rows = published(settings, "SELECT lad19_code, coalesce(lts_65plus, 0) FROM frailty_lad")
    return dict(rows)


def published(settings: Settings, query: str) -> list[tuple]:
    con = duckdb.connect(str(settings.publish_dir / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


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
        together, single = published(shared, query), published(alone, query)
        assert sorted(together, key=str) == sorted(single, key=str) and together


def test_the_authorities_are_read_from_the_raw_folder(tmp_path):
    """Those of the newest register's LSOAs (its header as senders write it, unknown LSOAs
    ignored) and those sending social care data, without conforming anything."""
    from tests.conftest import PATIENT_COLUMNS, write_csv
    from tests.test_conform import register_row

    header = [f" {c.upper()} " if c == "lsoa11_code" else c for c in PATIENT_COLUMNS]
    raw = tmp_path / "raw"
    write_csv(
        raw / "gp_patients" / "gp_patients_2024-03-31.csv",
        PATIENT_COLUMNS,
        [register_row("9434765919", lsoa11_code="E01000001")],  # City of London, superseded
    )
    write_csv(
        raw / "gp_patients" / "gp_patients_2025-03-31.csv",
        header,
        [
            register_row("9434765919", lsoa11_code="E01011949"),  # Hartlepool
            register_row("9434765870", lsoa11_code=""),
            register_row("9434765889", lsoa11_code="E01999999"),  # in no lookup
        ],
    )
    write_csv(raw / "asc_cld" / "asc_cld_E06000053_2025-03-31.csv", ["LA_Code"], [["E06000053"]])
    settings = Settings.resolve(raw, tmp_path / "warehouse", tmp_path / "published")
    assert conformed.authorities_in_raw(settings) == ["E06000001", "E06000053"]


def test_authorities_conformed_together_come_out_as_each_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("INDICES_PSEUDONYM_KEY", "a fixed key, for both warehouses")
    raw = REPO / "data" / "raw"
    together = Settings.resolve(raw, tmp_path / "together", tmp_path / "p1")
    alone = Settings.resolve(raw, tmp_path / "alone", tmp_path / "p2")
    for settings in (together, alone):
        conformed.conform(settings, "gp_patients")  # the register the social care rows link to
    results = conformed.conform_by_authority(together, "asc_cld", [*AUTHORITIES, "E09000001"])
    assert [len(r.ledger) for r in results] == [1, 1, 1, 0]  # E09000001 sent nothing
    con = duckdb.connect()
    for authority, result in zip([*AUTHORITIES, "E09000001"], results, strict=True):
        (single,) = conformed.conform_by_authority(alone, "asc_cld", [authority])
        assert single.ledger == result.ledger
        for path, other in (
            (result.conformed_path, single.conformed_path),
            (result.quarantine_path, single.quarantine_path),
        ):
            assert con.sql(f"SELECT * FROM '{path}'").fetchall() == (
                con.sql(f"SELECT * FROM '{other}'").fetchall()
            )
        rows = con.sql(f"SELECT count(*) FROM '{result.conformed_path}'").fetchall()
        assert rows == [(result.rows_conformed,)]


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
