"""Operating the pipeline: raw source assets and their data versions, the `new_extracts` sensor,
the nightly schedule, retries, and pruning the run history (the prune script run as an operator
runs it: tests/system/test_operations.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from indices.sources import inputs as run_inputs
from indices.sources import registry
from pipelines.assets.raw import ABSENT, INVALID, TRANSIENT_RETRY
from pipelines.definitions import defs
from pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipelines.resources import IndicesSettings
from pipelines.sensors import SETTLE_SECONDS
from scripts.prune_runs import prune_runs
from tests.conftest import DEMO_RAW

RAW_KEYS = [dg.AssetKey(["raw", s]) for s in registry.SOURCES]


def age(path: Path, seconds: float = 3600) -> None:
    """Make a file look as if it had landed `seconds` ago (settled, for the sensor)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture()
def raw(tmp_path) -> Path:
    """A copy of the committed demo extracts, every file settled."""
    folder = tmp_path / "raw"
    shutil.copytree(DEMO_RAW, folder)
    for path in folder.rglob("*"):
        age(path)
    return folder


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_version(*paths: Path) -> str:
    """The documented data version: SHA-256 of `<file name> <SHA-256 of content>` lines."""
    lines = "".join(
        f"{p.name} {sha256(p.read_bytes())}\n" for p in sorted(paths, key=lambda p: p.name)
    )
    return sha256(lines.encode())


# -- definitions ------------------------------------------------------------------------------


def test_definitions_have_every_group_and_the_raw_sources():
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert {graph.get(k).group_name for k in keys} == {
        "raw",
        "conformed",
        "measures",
        "published",
        "indices",
    }
    for source in registry.SOURCES:
        node = graph.get(dg.AssetKey(["raw", source]))
        assert node.group_name == "raw" and node.is_observable and not node.is_materializable
        assert node.owners == ["team:data-engineering"]
        assert node.description and node.kinds
        conformed = graph.get(dg.AssetKey(["conformed", source]))
        assert dg.AssetKey(["raw", source]) in conformed.parent_keys
    job = defs.resolve_job_def("main")
    assert set(RAW_KEYS) <= job.asset_layer.asset_graph.get_all_asset_keys()


def test_assets_retry_transient_failures():
    expected = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)
    assert expected == TRANSIENT_RETRY
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if key.path[0] in ("conformed", "measures", "published"):
            assert defs.resolve_assets_def(key).op.retry_policy == TRANSIENT_RETRY, key
    # The main job retries every other step the same way (index assets, checks).
    assert defs.resolve_job_def("main").op_retry_policy == TRANSIENT_RETRY


# -- raw source assets: observation -----------------------------------------------------------


def observe(raw: Path, *sources: str) -> dict[str, dg.AssetObservation]:
    """Observe raw sources in process, as the main job's first steps do."""
    result = defs.resolve_job_def("main").execute_in_process(
        asset_selection=[dg.AssetKey(["raw", s]) for s in sources],
        run_config={"resources": {"settings": {"config": {"raw_dir": str(raw)}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    observations = [
        e.asset_observation_data.asset_observation for e in result.get_asset_observation_events()
    ]
    return {o.asset_key.path[-1]: o for o in observations}


def test_the_data_version_of_a_raw_source_is_the_hash_of_its_extract(raw):
    extract = raw / "gp_events" / "gp_events_2025-03-31.csv.gz"
    observed = observe(raw, "gp_events")["gp_events"]
    assert observed.data_version == expected_version(extract)
    metadata = {k: v.value for k, v in observed.metadata.items()}
    assert sha256(extract.read_bytes()) in metadata["files"]  # the file's own content hash
    assert metadata["extracts"] == 1 and metadata["newest_extract_date"] == "2025-03-31"

    extract.write_bytes(extract.read_bytes() + b"\n")  # the same file, other content
    changed = observe(raw, "gp_events")["gp_events"].data_version
    assert changed == expected_version(extract) != observed.data_version

    newer = raw / "gp_events" / "gp_events_2025-04-30.csv.gz"  # a resent extract, a new date
    shutil.copy2(extract, newer)
    assert observe(raw, "gp_events")["gp_events"].data_version == expected_version(newer)
    assert expected_version(newer) != changed


def test_asc_cld_is_versioned_by_the_newest_extract_per_authority(raw):
    folder = raw / "asc_cld"
    current = sorted(folder.iterdir())
    assert len(current) == 3
    assert observe(raw, "asc_cld")["asc_cld"].data_version == expected_version(*current)

    older = folder / "asc_cld_E06000001_2024-03-31.csv.gz"  # an older one changes nothing
    shutil.copy2(current[1], older)
    assert observe(raw, "asc_cld")["asc_cld"].data_version == expected_version(*current)

    newer = folder / "asc_cld_E06000001_2025-06-30.csv.gz"  # a newer one replaces its LA's
    shutil.copy2(current[1], newer)
    assert observe(raw, "asc_cld")["asc_cld"].data_version == expected_version(newer, *current[1:])


def test_observation_does_not_fail_on_an_absent_or_odd_source(raw):
    shutil.rmtree(raw / "hes_apc")
    (raw / "fingertips" / "notes.txt").write_text("not an extract")
    observed = observe(raw, "hes_apc", "fingertips", "gp_patients")
    assert observed["hes_apc"].data_version == ABSENT
    assert observed["fingertips"].data_version == INVALID
    assert "not an extract of fingertips" in observed["fingertips"].metadata["problem"].value
    assert observed["gp_patients"].data_version not in (ABSENT, INVALID)
    assert observe(raw.parent / "nowhere", "gp_patients")["gp_patients"].data_version == ABSENT


# -- the new_extracts sensor ------------------------------------------------------------------

AUTHORITIES_IN_DEMO = ["E06000001", "E06000017", "E06000053"]


@pytest.fixture()
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, raw: Path, cursor: str | None):
    """One evaluation of the sensor against a raw folder: what the daemon would get."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"settings": settings_of(raw)},
    )
    return defs.resolve_sensor_def("new_extracts").evaluate_tick(context)


def settings_of(raw: Path) -> IndicesSettings:
    return IndicesSettings(raw_dir=str(raw), warehouse_dir=str(raw.parent / "warehouse"))


def decided_files(raw: Path, request: dg.RunRequest) -> set[str]:
    """The extracts the requested run will read, decided by its launcher (the tags say which)."""
    inputs = run_inputs.load(raw.parent / "warehouse", request.tags[run_inputs.INPUTS_TAG])
    return {e["file"] for e in inputs.record()["extracts"]}


def selected(request: dg.RunRequest) -> set[str]:
    return {key.to_user_string() for key in request.asset_selection}


def test_the_sensor_runs_what_a_new_extract_makes_stale(instance, raw):
    # First tick: records the extracts in force, requests nothing (the nightly run and
    # `make run` build from scratch; the sensor reacts to changes).
    first = tick(instance, raw, None)
    assert not first.run_requests
    assert first.skip_message.startswith("first tick")
    assert len(json.loads(first.cursor)) == 8  # 5 sources + 3 authorities of asc_cld
    # ... and makes the raw folder's local authorities partitions.
    (added,) = first.dynamic_partitions_requests
    assert added.partitions_def_name == "authority"
    assert added.partition_keys == AUTHORITIES_IN_DEMO
    instance.add_dynamic_partitions("authority", added.partition_keys)  # as the daemon does

    quiet = tick(instance, raw, first.cursor)  # nothing changed
    assert not quiet.run_requests and quiet.skip_message.startswith("no new or changed")

    folder = raw / "gp_events"
    shutil.copy2(folder / "gp_events_2025-03-31.csv.gz", folder / "gp_events_2025-04-30.csv.gz")
    new = tick(instance, raw, first.cursor)
    (request,) = new.run_requests
    assets = selected(request)
    assert {"raw/gp_events", "conformed/gp_events", "measures/persons"} <= assets
    assert {"measures/area_counts", "published/frailty_lad", "published/ingest_ledger"} <= assets
    assert "indices/frailty_index" in assets
    assert not assets & {"conformed/gp_patients", "raw/gp_patients", "conformed/hes_apc"}
    assert "indices/imd2019" not in assets  # needs no extract
    assert request.tags["indices/changed_sources"] == "gp_events"
    assert request.tags[RANGE_START_TAG] == "E06000001"  # every authority's persons
    assert request.tags[RANGE_END_TAG] == "E06000053"
    # What the run reads is decided now and handed to it: the new events, the register in force.
    assert request.tags[run_inputs.REFERENCE_DATE_TAG] == "2025-03-31"
    assert request.tags[run_inputs.REGISTER_TAG] == "gp_patients_2025-03-31.csv.gz"
    files = decided_files(raw, request)
    assert "gp_events_2025-04-30.csv.gz" in files and "gp_events_2025-03-31.csv.gz" not in files
    assert not new.dynamic_partitions_requests  # no new authority
    assert "gp_events/gp_events_2025-04-30.csv.gz" in json.loads(new.cursor)

    again = tick(instance, raw, first.cursor)  # the same change seen again: the same run key,
    assert again.run_requests[0].run_key == request.run_key  # which Dagster launches once
    after = tick(instance, raw, new.cursor)
    assert not after.run_requests and after.skip_message.startswith("no new or changed")


def test_the_sensor_waits_for_a_file_still_being_written(instance, raw):
    first = tick(instance, raw, None)
    fresh = raw / "hes_apc" / "hes_apc_2025-04-30.csv.gz"
    fresh.write_bytes((raw / "hes_apc" / "hes_apc_2025-03-31.csv.gz").read_bytes())
    waiting = tick(instance, raw, first.cursor)
    assert not waiting.run_requests
    assert waiting.skip_message == "waiting for hes_apc/hes_apc_2025-04-30.csv.gz to settle"
    assert waiting.cursor in (None, first.cursor)  # the change is still to come

    age(fresh, SETTLE_SECONDS + 1)
    (request,) = tick(instance, raw, first.cursor).run_requests
    assert "conformed/hes_apc" in selected(request)
    assert "conformed/gp_events" not in selected(request)


def test_the_sensor_sees_changed_and_removed_extracts(instance, raw):
    first = tick(instance, raw, None)
    extract = raw / "asc_cld" / "asc_cld_E06000017_2025-03-31.csv.gz"
    extract.unlink()  # an authority's only extract withdrawn
    (request,) = tick(instance, raw, first.cursor).run_requests
    assert request.tags["indices/changed_sources"] == "asc_cld"
    assert "conformed/asc_cld" in selected(request)


def test_a_late_social_care_file_reruns_its_authority_alone(instance, raw):
    first = tick(instance, raw, None)
    instance.add_dynamic_partitions("authority", AUTHORITIES_IN_DEMO)
    folder = raw / "asc_cld"
    late = folder / "asc_cld_E06000017_2025-04-07.csv.gz"
    shutil.copy2(folder / "asc_cld_E06000017_2025-03-31.csv.gz", late)
    (request,) = tick(instance, raw, first.cursor).run_requests
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == "E06000017"
    assets = selected(request)
    assert {"conformed/asc_cld", "measures/long_term_support", "measures/area_counts"} <= assets
    assert not assets & {"measures/persons", "conformed/gp_patients"}  # residents untouched


def test_a_new_authority_becomes_a_partition(instance, raw):
    first = tick(instance, raw, None)
    instance.add_dynamic_partitions("authority", AUTHORITIES_IN_DEMO)
    folder = raw / "asc_cld"
    shutil.copy2(
        folder / "asc_cld_E06000017_2025-03-31.csv.gz", folder / "asc_cld_E09000001_2025-03-31.csv"
    )
    age(folder / "asc_cld_E09000001_2025-03-31.csv")
    result = tick(instance, raw, first.cursor)
    (added,) = result.dynamic_partitions_requests
    assert added.partition_keys == ["E09000001"]
    (request,) = result.run_requests
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == "E09000001"


def test_the_sensor_skips_an_unusable_raw_folder(instance, raw, tmp_path):
    missing = tick(instance, tmp_path / "nowhere", None)
    assert not missing.run_requests and "does not exist" in missing.skip_message
    (raw / "gp_patients" / "patients.csv").write_text("x")
    odd = tick(instance, raw, None)
    assert not odd.run_requests and "not an extract of gp_patients" in odd.skip_message


def test_the_sensor_is_on_by_default():
    sensor = defs.resolve_sensor_def("new_extracts")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    assert sensor.job_name == "main"


# -- the nightly schedule ---------------------------------------------------------------------


def test_the_nightly_schedule(instance, raw):
    nightly = defs.resolve_schedule_def("nightly")
    assert nightly.cron_schedule == "0 2 * * *"
    assert nightly.execution_timezone == "Europe/London"
    assert nightly.job_name == "main"
    assert nightly.default_status == dg.DefaultScheduleStatus.RUNNING
    at = datetime(2025, 7, 1, 2, 0, tzinfo=ZoneInfo("Europe/London"))  # BST: 01:00 UTC
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        resources={"settings": settings_of(raw)},
    )
    (request,) = nightly.evaluate_tick(context).run_requests
    assert request.job_name in (None, "main")
    # Every authority of the raw folder is a partition first, and the run covers them all.
    assert instance.get_dynamic_partitions("authority") == AUTHORITIES_IN_DEMO
    assert request.tags[RANGE_START_TAG] == "E06000001"
    assert request.tags[RANGE_END_TAG] == "E06000053"
    # The extracts in force at 02:00 are what the run reads, whatever arrives before it ends.
    assert request.tags[run_inputs.REFERENCE_DATE_TAG] == "2025-03-31"
    assert len(decided_files(raw, request)) == 8


# -- pruning the run history ------------------------------------------------------------------


@dg.asset
def tiny() -> None:
    """A stand-in asset with a materialisation history."""


@dg.op
def nothing() -> None:
    pass


@dg.job
def plain() -> None:
    """A run with no asset in it."""
    nothing()


def test_prune_runs_deletes_old_runs_but_keeps_the_latest_of_each_asset(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = dg.materialize([tiny], instance=instance).run_id
        latest = dg.materialize([tiny], instance=instance).run_id
        other = plain.execute_in_process(instance=instance).run_id
        now = datetime.now(UTC)

        assert prune_runs(instance, 30, now=now) == []  # nothing that old
        later = now + timedelta(days=31)
        assert sorted(prune_runs(instance, 30, now=later, dry_run=True)) == sorted([first, other])
        assert len(instance.get_run_records()) == 3  # a dry run deletes nothing
        assert sorted(prune_runs(instance, 30, now=later)) == sorted([first, other])
        assert [r.dagster_run.run_id for r in instance.get_run_records()] == [latest]
        assert instance.get_latest_materialization_event(tiny.key).run_id == latest
