"""The pipeline's steps as plain functions of the settings, so Dagster assets stay thin and the
same steps can run without Dagster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa

from indices import storage
from indices.areas import (
    COUNTS,
    PARTITIONS,
    build_area_counts,
    column_descriptions,
    published_area_table,
)
from indices.availability import Withheld, withheld_measures
from indices.duck import connect, query_rows, sql_str
from indices.measures.persons import build_persons
from indices.pseudonym import load_key
from indices.publish import Release, input_record, publish_release
from indices.settings import Settings
from indices.sources.conform import SourceResult, conform_source, count_data_rows, read_sidecar
from indices.sources.extracts import check_raw_folder, current_extracts, newest_extract_date
from indices.sources.layouts import LAYOUTS

GP_SOURCES = ("gp_patients", "gp_events", "gp_medications")
PERSON_SOURCES = (*GP_SOURCES, "hes_apc", "asc_cld")  # what the person-level measures read
SOURCES = (*PERSON_SOURCES, "fingertips")
REQUIRED_SOURCES = GP_SOURCES  # without these there is no population and no eFI
REFERENCE_FILES = (
    "geography/lsoa11_lad19.csv",
    "frailty/plausible_shares.csv",
    "frailty/efi_snomed_codes.csv",
    "frailty/efi_deficits.csv",
    "frailty/hfrs_icd10_weights.csv",
    "frailty/index_bands.csv",
    "vocabularies/sex_codes.csv",
    "vocabularies/admission_methods.csv",
    "vocabularies/asc_event_types.csv",
    "vocabularies/asc_service_types.csv",
    "vocabularies/asc_genders.csv",
)


@dataclass(frozen=True)
class AreaDataset:
    name: str
    level: str
    sort_by: tuple[str, ...]
    description: str


AREA_DATASETS = (
    AreaDataset(
        "frailty_lsoa",
        "lsoa",
        ("lsoa11_code",),
        "Frailty counts and rates per LSOA 2011 (every LSOA of the covered local authorities).",
    ),
    AreaDataset(
        "frailty_lad",
        "lad",
        ("lad19_code",),
        "Frailty counts and rates per lower-tier local authority 2019 (summed over persons).",
    ),
    AreaDataset(
        "frailty_england",
        "england",
        (),
        "Frailty counts and rates for England (all persons, including those of unknown LSOA).",
    ),
)


def reference_date(settings: Settings) -> date:
    """The run's reference date: the one set, else the newest gp_patients extract date."""
    return settings.reference_date or newest_extract_date(settings.raw_dir)


def conform(settings: Settings, source: str) -> SourceResult:
    """Conform the current extracts of one source into the private warehouse."""
    extracts = check_raw_folder(settings.raw_dir, REQUIRED_SOURCES)[source]
    key = load_key(settings.warehouse_dir)
    return conform_source(LAYOUTS[source], extracts, settings.warehouse_dir, key)


def persons(settings: Settings) -> tuple[storage.Location, int]:
    """The private person-level table as at the reference date."""
    return build_persons(settings.warehouse_dir, reference_date(settings))


def implausible_shares(settings: Settings, measure: str) -> tuple[list[str], dict[str, float]]:
    """Categories whose share of persons is far from the expected one (a warning, not an
    error: real areas differ); the problems and the observed shares."""
    from indices.reference import reference_path

    expected = pd.read_csv(reference_path("frailty/plausible_shares.csv"))
    expected = expected[expected["measure"] == measure]
    column, age = {"efi": ("efi_category", 65), "hfrs": ("hfrs_band", 75)}[measure]
    persons_path = storage.join(settings.warehouse_dir, "measures", "persons.parquet")
    observed = dict(
        query_rows(
            f"SELECT {column}, count(*) / sum(count(*)) OVER () FROM "
            f"read_parquet({sql_str(persons_path)}) WHERE age >= {age} GROUP BY 1"
        )
    )
    problems = [
        f"{row.category}: {observed.get(row.category, 0):.1%}, expected about "
        f"{row.expected_share:.0%} ± {row.tolerance:.0%}"
        for row in expected.itertuples()
        if abs(observed.get(row.category, 0) - row.expected_share) > row.tolerance
    ]
    return problems, {k: round(v, 4) for k, v in observed.items() if k is not None}


def withheld(settings: Settings) -> Withheld:
    """What the area counts must withhold, given the ledgers and the authorities covered."""
    persons_path = storage.join(settings.warehouse_dir, "measures", "persons.parquet")
    covered = [
        row[0]
        for row in query_rows(
            f"SELECT DISTINCT lad19_code FROM read_parquet({sql_str(persons_path)}) "
            "WHERE lad19_code IS NOT NULL ORDER BY 1"
        )
    ]
    return withheld_measures(settings.warehouse_dir, covered)


def area_counts(settings: Settings) -> tuple[storage.Location, int, Withheld]:
    """The private, exact counts per LSOA, LAD and England, and what they withhold."""
    reasons = withheld(settings)
    path, rows = build_area_counts(settings.warehouse_dir, reasons)
    return path, rows, reasons


def partition_problems(area_counts_path: storage.Location) -> list[str]:
    """Areas whose category counts do not add up to their population (before rounding)."""
    con = connect()
    try:
        problems = []
        for total, parts in PARTITIONS.items():
            # Withheld counts are null and compare as unknown: only known sums are checked.
            rows = con.execute(
                f"SELECT level, area_code, {total}, {' + '.join(parts)} FROM read_parquet("
                f"{sql_str(area_counts_path)}) WHERE {total} <> {' + '.join(parts)}"
            ).fetchall()
            problems += [
                f"{lvl} {code}: {total}={t} but categories sum to {s}" for lvl, code, t, s in rows
            ]
        return problems
    finally:
        con.close()


def missing_lsoas(area_counts_path: storage.Location) -> list[str]:
    """LSOAs of a covered local authority that have no row in the LSOA counts."""
    from indices.reference import reference_path

    con = connect()
    try:
        lookup = sql_str(reference_path("geography/lsoa11_lad19.csv"))
        counts = sql_str(area_counts_path)
        return [
            row[0]
            for row in con.execute(
                f"SELECT l.lsoa11_code FROM read_csv({lookup}, all_varchar = true) l "
                f"WHERE l.lad19_code IN (SELECT area_code FROM read_parquet({counts}) "
                f"WHERE level = 'lad') AND l.lsoa11_code NOT IN (SELECT area_code FROM "
                f"read_parquet({counts}) WHERE level = 'lsoa') ORDER BY 1"
            ).fetchall()
        ]
    finally:
        con.close()


def lineage_inputs(
    settings: Settings, sources: tuple[str, ...] = GP_SOURCES, reference: bool = True
) -> list[dict]:
    """Every raw extract (from the conformed sidecars) and reference file that fed a dataset."""
    from indices.reference import reference_path

    inputs = [
        i for source in sources for i in read_sidecar(settings.warehouse_dir, source)["inputs"]
    ]
    if reference:
        inputs += [input_record(reference_path(r), f"reference/{r}") for r in REFERENCE_FILES]
    return inputs


LEDGER_COLUMNS = {
    "source": "raw source, e.g. gp_events",
    "file": "raw extract file name",
    "outcome": "conformed or quarantined (rows; these two add up to the rows read), corrected "
    "(values normalised within conformed rows), or rejected (the whole file, rows 0)",
    "reason": "quarantine reason, correction kind or rejection reason; blank for conformed",
    "rows": "number of rows (or values, for corrected)",
}


def ledger_table(settings: Settings) -> pa.Table:
    """The ingest ledger of the current conformed tables, long format, counts only."""
    records = [
        row for source in SOURCES for row in read_sidecar(settings.warehouse_dir, source)["ledger"]
    ]
    return pa.Table.from_pylist(
        records,
        schema=pa.schema(
            [
                ("source", pa.string()),
                ("file", pa.string()),
                ("outcome", pa.string()),
                ("reason", pa.string()),
                ("rows", pa.int64()),
            ]
        ),
    )


def publish_ledger(settings: Settings, run_id: str | None = None) -> Release:
    """Publish the ingest ledger: how every raw row of every file was disposed of."""
    return publish_release(
        settings.publish_dir,
        "ingest_ledger",
        ledger_table(settings),
        description="Per source and raw file: rows conformed, quarantined per reason, values "
        "corrected per kind, and rejected files with the reason. Counts only.",
        column_descriptions=LEDGER_COLUMNS,
        sort_by=["source", "file", "outcome", "reason"],
        reference_date=reference_date(settings),
        inputs=lineage_inputs(settings, SOURCES, reference=False),
        run_id=run_id,
    )


def ledger_problems(settings: Settings) -> list[str]:
    """Files whose rows conformed plus quarantined differ from their data rows counted afresh."""
    problems = []
    for source in SOURCES:
        sidecar = read_sidecar(settings.warehouse_dir, source)
        extracts = {e.path.name: e for e in current_extracts(settings.raw_dir, source)}
        accounted: dict[str, int] = {}
        for row in sidecar["ledger"]:
            if row["outcome"] in ("conformed", "quarantined"):
                accounted[row["file"]] = accounted.get(row["file"], 0) + row["rows"]
        for name, rows in accounted.items():
            read = count_data_rows(extracts[name])
            if read != rows:
                problems.append(f"{name}: {read} data rows, {rows} accounted for")
    return problems


def linkage_rate(result: SourceResult) -> float | None:
    """Share of a person-level source's rows that could be linked to a person in the GP
    register: conformed rows over those plus rows set aside for a missing, invalid or unknown
    NHS number."""
    unlinked = sum(
        e.quarantined[r]
        for e in result.ledger
        for r in ("no_nhs_number", "invalid_nhs_number", "unknown_person")
    )
    total = result.rows_conformed + unlinked
    return result.rows_conformed / total if total else None


def publish_area(settings: Settings, dataset: AreaDataset, run_id: str | None = None) -> Release:
    """Write, audit and publish one area dataset from the private counts."""
    counts_path = storage.join(settings.warehouse_dir, "measures", "area_counts.parquet")
    d = reference_date(settings)
    con = connect()
    try:
        table = published_area_table(counts_path, dataset.level, d, con)
    finally:
        con.close()
    return publish_release(
        settings.publish_dir,
        dataset.name,
        table,
        description=dataset.description,
        column_descriptions=column_descriptions(),
        sort_by=list(dataset.sort_by),
        reference_date=d,
        inputs=lineage_inputs(settings, PERSON_SOURCES),
        count_columns=[c.name for c in COUNTS],
        run_id=run_id,
    )


# -- composite indices ---------------------------------------------------------------------------


def index_spec_paths() -> list[Path]:
    """Every index spec in `data/reference/indices/`: a new index is a new file there."""
    from indices.reference import reference_dir

    return sorted((reference_dir() / "indices").glob("*.yaml"))


def index_warehouse_inputs(spec) -> list[str]:
    """The warehouse tables an index reads, e.g. `measures/area_counts.parquet`."""
    return [
        i.path.removeprefix("warehouse:") for i in spec.inputs if i.path.startswith("warehouse:")
    ]


def build_and_publish_index(settings: Settings, spec_path: Path, run_id: str | None = None):
    """Compute an index from its spec and publish its datasets; the result and releases."""
    from indices.composite.engine import compute, load_inputs, resolve_path
    from indices.composite.release import publish_index
    from indices.composite.spec import load_spec

    spec = load_spec(spec_path)
    result = compute(spec, load_inputs(spec, settings.warehouse_dir))
    uses_warehouse = bool(index_warehouse_inputs(spec))
    inputs = [
        input_record(resolve_path(spec, i.path, settings.warehouse_dir), f"index input/{i.path}")
        for i in spec.inputs
        if not i.path.startswith("warehouse:")
    ]
    if uses_warehouse:
        inputs += lineage_inputs(settings, PERSON_SOURCES)
    releases = publish_index(
        result,
        settings.publish_dir,
        inputs,
        reference_date(settings) if uses_warehouse else None,
        run_id,
    )
    return result, releases
