"""A run decides what it reads once, when it starts: a register arriving mid-run does not mix two
reference dates or two registers into one release; a warehouse shared with another run on other
extracts is refused, not mixed in."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from indices.cli import main
from indices.core import warehouse
from indices.core.published import list_versions
from indices.core.settings import Settings
from indices.measures import parts
from indices.sources import conformed, registry
from indices.sources import inputs as run_inputs
from indices.sources.inputs import INPUTS_TAG, REFERENCE_DATE_TAG, REGISTER_TAG, InputsChanged
from pipelines.definitions import defs
from pipelines.run import run_main_job, settings_run_config
from tests.conftest import DEMO_RAW, REPO

BASELINE = REPO / "tests" / "data" / "published_baseline"
NEW_REGISTER = "gp_patients_2025-04-30.csv.gz"


def newer_register(raw: Path) -> Path:
    """A later register extract holding every other registration of the demo one: a release
    mixing it with the older one would show other counts and another reference date."""
    with gzip.open(raw / "gp_patients" / "gp_patients_2025-03-31.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()
    target = raw / "gp_patients" / NEW_REGISTER
    with gzip.open(target, "wt") as handle:
        handle.write("\n".join(lines[:1] + lines[1::2]) + "\n")
    return target


def published(publish_dir: Path, dataset: str, version: str):
    return pq.read_table(publish_dir / dataset / version / "data.parquet")


def test_a_register_arriving_mid_run_is_left_for_the_next_run(tmp_path, monkeypatch):
    shutil.copytree(DEMO_RAW, tmp_path / "raw")
    settings = Settings.resolve(tmp_path / "raw", tmp_path / "warehouse", tmp_path / "published")
    persons = parts.persons

    def persons_after_a_new_register_lands(settings, authorities):
        # The register lands after the run conformed the old one, before it counts anyone.
        if not (tmp_path / "raw" / "gp_patients" / NEW_REGISTER).exists():
            newer_register(tmp_path / "raw")
        return persons(settings, authorities)

    monkeypatch.setattr(parts, "persons", persons_after_a_new_register_lands)
    instance = dg.DagsterInstance.ephemeral()
    result = run_main_job(settings, instance=instance)
    assert result.success
    assert (tmp_path / "raw" / "gp_patients" / NEW_REGISTER).exists()
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[REFERENCE_DATE_TAG] == "2025-03-31"
    assert tags[REGISTER_TAG] == "gp_patients_2025-03-31.csv.gz"
    # Wholly of the register in force when the run started: every figure as the baseline.
    for dataset in ("frailty_lsoa", "frailty_lad", "frailty_england", "frailty_index_lsoa"):
        assert published(settings.publish_dir, dataset, "v000001").equals(
            pq.read_table(BASELINE / f"{dataset}.parquet")
        ), dataset
    manifest = run_inputs.load(settings.warehouse_dir, tags[INPUTS_TAG]).record()
    assert NEW_REGISTER not in {e["file"] for e in manifest["extracts"]}

    # The next run reads the new register, wholly: as a run on a folder holding only it.
    monkeypatch.setattr(parts, "persons", persons)
    again = run_main_job(settings, instance=instance)
    assert again.success
    assert instance.get_run_by_id(again.run_id).tags[REGISTER_TAG] == NEW_REGISTER
    alone = tmp_path / "alone"
    shutil.copytree(DEMO_RAW, alone / "raw")
    (alone / "raw" / "gp_patients" / "gp_patients_2025-03-31.csv.gz").unlink()
    shutil.copy2(tmp_path / "raw" / "gp_patients" / NEW_REGISTER, alone / "raw" / "gp_patients")
    fresh = Settings.resolve(alone / "raw", alone / "warehouse", alone / "published")
    assert run_main_job(fresh, instance=dg.DagsterInstance.ephemeral()).success
    for dataset in ("frailty_lad", "frailty_england"):
        second = published(settings.publish_dir, dataset, "v000002")
        assert second.equals(published(fresh.publish_dir, dataset, "v000001")), dataset
        assert second.column("reference_date").to_pylist()[0].isoformat() == "2025-04-30"


def test_a_run_started_without_inputs_decides_them_once_and_records_them(tmp_path):
    """As a run launched from the UI: no tags; its first step decides, every step agrees."""
    settings = Settings.resolve(DEMO_RAW, tmp_path / "warehouse", tmp_path / "published")
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("main").execute_in_process(
        run_config=settings_run_config(settings),
        instance=instance,
        asset_selection=[
            dg.AssetKey(["raw", "gp_patients"]),
            dg.AssetKey(["conformed", "gp_patients"]),
        ],
    )
    assert result.success
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[REFERENCE_DATE_TAG] == "2025-03-31" and tags[INPUTS_TAG]
    claimed = warehouse.run_record(settings.warehouse_dir, f"run-{result.run_id}")
    assert claimed.read_text() == tags[INPUTS_TAG]
    sidecar = conformed.read_sidecar(settings.warehouse_dir, "gp_patients")
    inputs = run_inputs.load(settings.warehouse_dir, tags[INPUTS_TAG])
    assert sidecar["made_from"] == inputs.source_digest("gp_patients")


def test_a_warehouse_changed_by_a_run_on_other_extracts_is_refused(tmp_path):
    """Two runs on different raw folders sharing a warehouse: the one whose conformed tables
    the other overwrote fails with one line instead of publishing a mix."""
    shutil.copytree(DEMO_RAW, tmp_path / "a")
    shutil.copytree(DEMO_RAW, tmp_path / "b")
    newer_register(tmp_path / "b")
    first = run_inputs.start_run(Settings.resolve(tmp_path / "a", tmp_path / "w", tmp_path / "p"))
    other = run_inputs.start_run(Settings.resolve(tmp_path / "b", tmp_path / "w", tmp_path / "p"))
    for source in registry.NATIONAL_PERSON_SOURCES:
        conformed.conform(first, source)
    conformed.conform(other, "gp_patients")  # the other run overwrites the register
    with pytest.raises(InputsChanged, match="conformed/gp_patients in the warehouse was made"):
        parts.persons(first, ["E06000001"])
    with pytest.raises(InputsChanged, match="conformed/gp_patients"):
        conformed.ledger_table(first)


def test_an_extract_rewritten_during_the_run_is_refused(tmp_path):
    shutil.copytree(DEMO_RAW, tmp_path / "raw")
    settings = run_inputs.start_run(
        Settings.resolve(tmp_path / "raw", tmp_path / "w", tmp_path / "p")
    )
    events = tmp_path / "raw" / "gp_events" / "gp_events_2025-03-31.csv.gz"
    events.write_bytes(events.read_bytes() + b"\n")
    conformed.conform(settings, "gp_patients")
    with pytest.raises(InputsChanged, match="gp_events_2025-03-31.csv.gz: changed since this run"):
        conformed.conform(settings, "gp_events")


def test_an_unusable_register_publishes_nothing_and_says_why(tmp_path, capsys):
    shutil.copytree(DEMO_RAW, tmp_path / "raw")
    folders = [
        f"--raw-dir={tmp_path / 'raw'}",
        f"--warehouse-dir={tmp_path / 'w'}",
        f"--publish-dir={tmp_path / 'p'}",
    ]
    assert main(["run", *folders]) == 0
    before = {d: list_versions(tmp_path / "p", d) for d in ("frailty_lad", "ingest_ledger")}
    # A later register in UTF-16: every row unreadable. The release stays as it was.
    text = gzip.decompress(
        (tmp_path / "raw/gp_patients/gp_patients_2025-03-31.csv.gz").read_bytes()
    )
    (tmp_path / "raw/gp_patients" / "gp_patients_2025-04-30.csv").write_bytes(
        text.decode().encode("utf-16")
    )
    capsys.readouterr()
    assert main(["run", *folders]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "the GP register cannot be used" in errors[0]
    assert "nothing that depends on it is published" in errors[0]
    after = {d: list_versions(tmp_path / "p", d) for d in ("frailty_lad", "ingest_ledger")}
    assert after == before
    con = duckdb.connect(str(tmp_path / "p" / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT pop_65plus FROM frailty_england").fetchone()[0] > 0
