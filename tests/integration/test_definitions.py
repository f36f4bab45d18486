"""The whole Dagster definition of the code location, as a committed summary: every asset (group,
kinds, partitions, dependencies, owners, observable or materialised), every asset check, job,
schedule, sensor and partitions definition, sorted, one fact a line. A change of the graph shows
as a diff of `snapshots/definitions.txt` in the test's failure and in review.

After a deliberate change, refresh the file and commit it with the change:

    INDICES_UPDATE_SNAPSHOTS=1 pytest tests/integration/test_definitions.py

Nothing that differs between machines is in it: no code versions, hashes, paths or executor (the
executor follows `INDICES_EXECUTOR`)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from tests.conftest import REPO

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.txt"
UPDATE_ENV = "INDICES_UPDATE_SNAPSHOTS"
HEADER = (
    "# The Dagster definitions of pipelines.definitions, checked by "
    "tests/integration/test_definitions.py.\n"
    f"# After a deliberate change: {UPDATE_ENV}=1 pytest tests/integration/test_definitions.py\n"
)


def name(key: dg.AssetKey | dg.AssetCheckKey) -> str:
    if isinstance(key, dg.AssetCheckKey):
        return f"{key.asset_key.to_user_string()}:{key.name}"
    return key.to_user_string()


def listed(items) -> str:
    return ", ".join(sorted(items)) or "-"


def partitions_name(partitions_def: dg.PartitionsDefinition | None) -> str:
    if partitions_def is None:
        return "-"
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"{partitions_def.name} (dynamic)"
    return type(partitions_def).__name__


def summary(definitions: dg.Definitions) -> str:
    """The definitions as sorted, stable text: sections of `name` lines with indented facts."""
    graph = definitions.resolve_asset_graph()
    lines = [HEADER, "[partitions]"]
    lines += sorted(partitions_name(p) for p in graph.all_partitions_defs)

    lines += ["", "[assets]"]
    for key in sorted(graph.get_all_asset_keys(), key=name):
        node = graph.get(key)
        deps = []
        for parent in node.parent_keys:
            mapping = node.partition_mappings.get(parent)
            deps.append(
                name(parent) + (f" ({type(mapping).__name__})" if mapping is not None else "")
            )
        lines += [
            name(key),
            f"  group: {node.group_name}",
            f"  kinds: {listed(node.kinds)}",
            f"  partitions: {partitions_name(node.partitions_def)}",
            f"  owners: {listed(node.owners)}",
            f"  observable: {'yes' if node.is_observable else 'no'}",
            "  deps:" + ("" if deps else " -"),
            *(f"    {dep}" for dep in sorted(deps)),
        ]

    lines += ["", "[asset checks]"]
    for key in sorted(graph.asset_check_keys, key=name):
        blocking = graph.get_check_spec(key).blocking
        lines.append(f"{name(key)} ({'blocking' if blocking else 'not blocking'})")

    lines += ["", "[jobs]"]
    selections = {job.name: job.selection for job in definitions.jobs or [] if job.selection}
    for job in sorted(definitions.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit job of every asset
            continue
        retry = job.op_retry_policy
        lines += [
            job.name,
            f"  selection: {selections.get(job.name, '-')}",
            f"  partitions: {partitions_name(job.partitions_def)}",
            "  retries: "
            + (f"{retry.max_retries}, {retry.delay} s, {retry.backoff.value}" if retry else "-"),
            "  assets:",
            *(f"    {name(key)}" for key in sorted(job.asset_layer.selected_asset_keys, key=name)),
            "  checks:",
            *(
                f"    {name(key)}"
                for key in sorted(job.asset_layer.asset_graph.asset_check_keys, key=name)
            ),
        ]

    lines += ["", "[schedules]"]
    for schedule in sorted(definitions.schedules or [], key=lambda s: s.name):
        lines += [
            schedule.name,
            f"  cron: {schedule.cron_schedule}",
            f"  timezone: {schedule.execution_timezone}",
            f"  job: {schedule.job_name}",
            f"  default status: {schedule.default_status.value}",
        ]

    lines += ["", "[sensors]"]
    for sensor in sorted(definitions.sensors or [], key=lambda s: s.name):
        lines += [
            sensor.name,
            f"  jobs: {listed(t.job_name for t in sensor.targets)}",
            f"  minimum interval: {sensor.minimum_interval_seconds} s",
            f"  default status: {sensor.default_status.value}",
        ]
    return "\n".join(lines) + "\n"


def test_the_definitions_match_their_snapshot():
    current = summary(defs)
    assert str(REPO) not in current  # nothing of this machine
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOT.write_text(current)
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if current != committed:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            f"{SNAPSHOT.relative_to(REPO)} (committed)",
            "pipelines.definitions (now)",
        )
        pytest.fail(
            "The Dagster definitions differ from their snapshot. If the change is deliberate, "
            f"refresh it ({UPDATE_ENV}=1 pytest tests/integration/test_definitions.py) and "
            "commit it with the change.\n" + "".join(diff),
            pytrace=False,
        )
