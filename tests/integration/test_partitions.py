"""Person-level work partitioned by local authority: each authority's part holds its own
residents, a late social care file reruns its authority alone, and the national counts refuse
parts that are missing or out of date (runs started together, each in a process of its own:
tests/system/test_partitions.py)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dagster as dg
import duckdb
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
from tests.helpers import catalog_rows

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
    assert catalog_rows(settings, query) == catalog_rows(fresh, query)


def lts_by_authority(settings: Settings) -> dict[str, int]:
    rows = catalog_rows(settings, "SELECT lad19_code, coalesce(lts_65plus, 0) FROM frailty_lad")
    return dict(rows)


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
