"""Publishing the frailty area datasets and the ingest ledger of a run."""

from __future__ import annotations

import pyarrow as pa

from indices.areas.counts import COUNTS, column_descriptions
from indices.areas.disclosure import SUPPRESS_BELOW, method_from_env, protect
from indices.areas.release import area_release, published_area_table, published_problems
from indices.areas.tables import AREA_DATASETS, AreaDataset, current_area_counts
from indices.core import warehouse
from indices.core.duck import connect, write_json_atomic
from indices.core.settings import Settings
from indices.releases.publish import Release, publish_release
from indices.sources.conformed import ledger_table, lineage_inputs
from indices.sources.inputs import reference_date
from indices.sources.registry import PERSON_SOURCES, SOURCES

# -- the run's inputs ------------------------------------------------------------------------------
# Within a run every step reads what the run decided when it started (`settings.inputs`, see
# `indices.sources.inputs`); the library used on its own decides afresh at each call.


# -- partitions by local authority ---------------------------------------------------------------
# Person-level work runs one lower-tier local authority at a time: the persons resident in it
# (and, apart, those with no known LSOA), and the persons its own social care extract supports.
# The national counts read every part, and only parts made from the current extracts at the
# reference date (`current_parts`), so a late or missing part stops them instead of skewing them.


# -- composite indices ---------------------------------------------------------------------------


LEDGER_COLUMNS = {
    "source": "raw source, e.g. gp_events",
    "file": "raw extract file name",
    "outcome": "conformed or quarantined (rows; before disclosure control these two add up to "
    "the rows read), corrected (values normalised within conformed rows), or rejected (the "
    "whole file, rows 0)",
    "reason": "quarantine reason, correction kind or rejection reason; blank for conformed",
    "rows": "number of rows (or values, for corrected); disclosure controlled as every published "
    "count: null if 1-7, else rounded to 5",
    "rows_suppressed": "true when rows was 1-7 and is published as null",
}


def published_ledger_table(exact: pa.Table) -> pa.Table:
    """The ingest ledger as published: every count under the same disclosure control as the
    area counts (0 stays 0, 1-7 null with a flag, else rounded to 5)."""
    rows = exact.column("rows").to_pylist()
    return exact.set_column(
        exact.schema.get_field_index("rows"),
        "rows",
        pa.array([protect(r) for r in rows], pa.int64()),
    ).append_column("rows_suppressed", pa.array([1 <= r < SUPPRESS_BELOW for r in rows]))


def publish_ledger(settings: Settings, run_id: str | None = None) -> tuple[Release, pa.Table]:
    """Publish the ingest ledger, disclosure controlled: how the raw rows of every file were
    disposed of. The release, and the exact ledger (for the data engineers, never published)."""
    exact = ledger_table(settings)
    release = publish_release(
        settings.publish_dir,
        "ingest_ledger",
        published_ledger_table(exact),
        description="Per source and raw file: rows conformed, quarantined per reason, values "
        "corrected per kind, and rejected files with the reason. Counts only, disclosure "
        "controlled.",
        column_descriptions=LEDGER_COLUMNS,
        sort_by=["source", "file", "outcome", "reason"],
        reference_date=reference_date(settings),
        inputs=lineage_inputs(settings, SOURCES, reference=False),
        count_columns=["rows"],
        run_id=run_id,
    )
    return release, exact


def publish_area(settings: Settings, dataset: AreaDataset, run_id: str | None = None) -> Release:
    """Write, audit and publish one area dataset from the private counts, disclosure controlled
    together with the other area datasets and audited against their previous releases by the
    deployment's method (`INDICES_DISCLOSURE`); the audit's cells go to the private warehouse."""
    counts_path = current_area_counts(settings)
    d = reference_date(settings)
    datasets = {a.level: a.name for a in AREA_DATASETS}
    release = area_release(counts_path, method_from_env(), settings.publish_dir, datasets)
    write_json_atomic(warehouse.disclosure_audit(settings.warehouse_dir), release.details)
    con = connect()
    try:
        table = published_area_table(release, dataset.level, d, con)
    finally:
        con.close()
    return publish_release(
        settings.publish_dir,
        dataset.name,
        table,
        description=dataset.description,
        column_descriptions=column_descriptions(release.method),
        sort_by=list(dataset.sort_by),
        reference_date=d,
        inputs=lineage_inputs(settings, PERSON_SOURCES),
        count_columns=[c.name for c in COUNTS],
        extra_audit=lambda written: release.problems + published_problems(written, release.method),
        disclosure=release.manifest_record(dataset.level),
        run_id=run_id,
    )
