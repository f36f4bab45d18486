"""The pipeline's steps as plain functions of the settings, so Dagster assets stay thin and the
same steps can run without Dagster."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa

from indices import storage
from indices.areas import (
    COUNTS,
    PARTITIONS,
    area_release,
    build_area_counts,
    column_descriptions,
    published_area_table,
    published_problems,
)
from indices.availability import Withheld, withheld_measures
from indices.disclosure import SUPPRESS_BELOW, method_from_env, protect
from indices.duck import connect, query_rows, sql_str, write_json_atomic
from indices.measures.persons import UNLOCATED, build_long_term_support, build_persons
from indices.pseudonym import load_key
from indices.publish import Release, input_record, publish_release
from indices.reference import lsoa_lookup, reference_path
from indices.run_inputs import InputsChanged, RunInputs, decide, save
from indices.settings import Settings
from indices.sources.conform import (
    SourceResult,
    conform_parts,
    count_data_rows,
    distinct_raw_values,
    read_sidecar,
    sidecar_path,
    warehouse_paths,
)
from indices.sources.extracts import Extract, current_extracts
from indices.sources.layouts import LAYOUTS

GP_SOURCES = ("gp_patients", "gp_events", "gp_medications")
NATIONAL_PERSON_SOURCES = (*GP_SOURCES, "hes_apc")  # national extracts the persons are made of
AUTHORITY_SOURCES = ("asc_cld",)  # one extract per local authority, conformed one at a time
PERSON_SOURCES = (*NATIONAL_PERSON_SOURCES, *AUTHORITY_SOURCES)  # what the measures read
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


# -- the run's inputs ------------------------------------------------------------------------------
# Within a run every step reads what the run decided when it started (`settings.inputs`, see
# `indices.run_inputs`); the library used on its own decides afresh at each call.


def decide_inputs(settings: Settings) -> RunInputs:
    """The inputs of a run starting now (see `indices.run_inputs.decide`)."""
    return decide(settings.raw_dir, settings.reference_date, REQUIRED_SOURCES)


def start_run(settings: Settings) -> Settings:
    """Decide a run's inputs now, as its launcher does (the CLI, the schedule, the sensor), and
    keep them in the warehouse; the settings of the run (`settings.inputs.tags()` are the tags
    that hand the same inputs to every step of it)."""
    inputs = decide_inputs(settings)
    save(settings.warehouse_dir, inputs)
    return settings.with_inputs(inputs)


def inputs_of(settings: Settings) -> RunInputs:
    """The extracts and the reference date this run reads."""
    return settings.inputs or decide_inputs(settings)


def in_force(settings: Settings, source: str) -> list[Extract]:
    """The extracts in force of a source, as the run decided them (for asc_cld, one per
    authority); without a run, as the raw folder has them now."""
    if settings.inputs:
        return settings.inputs.of(source)
    return current_extracts(settings.raw_dir, source)


def reference_date(settings: Settings) -> date:
    """The run's reference date: the one set, else the register in force's extract date."""
    return settings.reference_date or inputs_of(settings).reference_date


class RegisterUnusable(ValueError):
    """Nothing can be counted without the GP register; the message says why in one line."""


def conform(settings: Settings, source: str) -> SourceResult:
    """Conform the extracts in force of one national source into the private warehouse. The
    register must be usable: without it there is no population, so nothing that depends on it
    may be published (`RegisterUnusable`)."""
    inputs = inputs_of(settings)
    result = _conform_parts(settings, inputs, source, {None: inputs.of(source)})[0]
    if LAYOUTS[source].is_register:
        rejected = [entry.rejected for entry in result.ledger if entry.rejected]
        if rejected or not result.rows_conformed:
            why = "; ".join(rejected) or "no registration could be used (every row quarantined)"
            raise RegisterUnusable(
                f"the GP register cannot be used ({why}): nothing that depends on it is published"
            )
    return result


def conform_by_authority(
    settings: Settings, source: str, authorities: list[str]
) -> list[SourceResult]:
    """Conform the extracts in force of a source sent by each local authority, one part per
    authority (an authority that sent none gets an empty part), in one go."""
    inputs = inputs_of(settings)
    extracts = inputs.of(source)
    parts = {a: [e for e in extracts if e.lad19_code == a] for a in authorities}
    return _conform_parts(settings, inputs, source, parts)


def _conform_parts(
    settings: Settings, inputs: RunInputs, source: str, parts: dict[str | None, list[Extract]]
) -> list[SourceResult]:
    """Conform, checking that no extract changed while it was read, and stamp each part's
    sidecar with the digest of what it was made from (`verify_conformed` compares it)."""
    extracts = [e for files in parts.values() for e in files]
    inputs.check_unchanged(extracts)
    made_from = {part: inputs.source_digest(source, files) for part, files in parts.items()}
    key = load_key(settings.warehouse_dir)
    results = conform_parts(LAYOUTS[source], parts, settings.warehouse_dir, key, made_from)
    inputs.check_unchanged(extracts)
    return results


def verify_conformed(settings: Settings, source: str, part: str | None = None) -> dict:
    """The sidecar of a conformed table (or part), checked to be made from this run's extracts:
    another run on the same warehouse with other extracts, or a table not rebuilt since new
    extracts arrived, is refused with one line (`InputsChanged`) instead of being mixed in."""
    where = f"conformed/{source}" + (f" of {part}" if part else "")
    if not storage.exists(sidecar_path(settings.warehouse_dir, source, part)):
        raise InputsChanged(f"{where} is not in the warehouse: materialise it first")
    sidecar = read_sidecar(settings.warehouse_dir, source, part)
    inputs = inputs_of(settings)
    files = inputs.of(source)
    if part is not None:
        files = [e for e in files if e.lad19_code == part]
    if sidecar.get("made_from") != inputs.source_digest(source, files):
        raise InputsChanged(
            f"{where} in the warehouse was made from other extracts than this run's (another run "
            f"on the same warehouse, or new extracts since): materialise {where} again"
        )
    return sidecar


# -- partitions by local authority ---------------------------------------------------------------
# Person-level work runs one lower-tier local authority at a time: the persons resident in it
# (and, apart, those with no known LSOA), and the persons its own social care extract supports.
# The national counts read every part, and only parts made from the current extracts at the
# reference date (`current_parts`), so a late or missing part stops them instead of skewing them.


class PartsNotCurrent(ValueError):
    """Some authority's part is missing or was made from other extracts; the message names them."""


def authorities_in_raw(settings: Settings) -> list[str]:
    """The local authorities to partition by, read from the raw folder without conforming: those
    of the LSOAs in the newest GP register extract and those sending a social care extract."""
    lad_of = dict(zip(lsoa_lookup()["lsoa11_code"], lsoa_lookup()["lad19_code"], strict=True))
    found = {e.lad19_code for e in in_force(settings, "asc_cld")}
    register = in_force(settings, "gp_patients")
    if register:
        lsoas = distinct_raw_values(register[-1], "lsoa11_code")
        found |= {lad_of[code] for code in lsoas if code in lad_of}
    return sorted(found)


def register_authorities(settings: Settings) -> list[str]:
    """The local authorities of every LSOA in the conformed GP register."""
    register, _ = warehouse_paths(settings.warehouse_dir, "gp_patients")
    lookup = sql_str(reference_path("geography/lsoa11_lad19.csv"))
    return [
        row[0]
        for row in query_rows(
            f"SELECT DISTINCT g.lad19_code FROM read_parquet({sql_str(register)}) r "
            f"JOIN read_csv({lookup}, all_varchar = true) g USING (lsoa11_code) ORDER BY 1"
        )
    ]


def social_care_authorities(settings: Settings) -> list[str]:
    """The local authorities with a social care extract in force."""
    return sorted({e.lad19_code for e in in_force(settings, "asc_cld")})


def part_path(
    settings: Settings, table: str, part: str, suffix: str = ".parquet"
) -> storage.Location:
    """One part of a partitioned measures table, e.g. `measures/persons/E06000001.parquet`, or
    (suffix `.json`) the record of what it was made from."""
    return storage.join(settings.warehouse_dir, "measures", table, f"{part}{suffix}")


def _made_from(d: date, sidecars: list[storage.Location]) -> dict:
    """What a part is made from: the reference date and a hash of its inputs' sidecars."""
    digest = hashlib.sha256()
    for path in sidecars:
        digest.update(storage.read_bytes(path) if storage.exists(path) else b"absent")
    return {"reference_date": d.isoformat(), "inputs": digest.hexdigest()}


def _person_inputs(settings: Settings) -> list[storage.Location]:
    return [sidecar_path(settings.warehouse_dir, s) for s in NATIONAL_PERSON_SOURCES]


def _support_inputs(settings: Settings, authority: str) -> list[storage.Location]:
    return [sidecar_path(settings.warehouse_dir, "asc_cld", authority)]


def persons(settings: Settings, authorities: list[str]) -> list[tuple[storage.Location, int]]:
    """The private person tables as at the reference date of some local authorities' residents
    (`UNLOCATED`: the persons with no known LSOA), with their eFI and HFRS, one part each."""
    if settings.inputs:  # within a run: its own conformed tables, not another run's
        for source in NATIONAL_PERSON_SOURCES:
            verify_conformed(settings, source)
    d = reference_date(settings)
    targets = {a: part_path(settings, "persons", a) for a in authorities}
    rows = build_persons(
        storage.join(settings.warehouse_dir, "conformed"),
        d,
        targets,
        storage.scratch_dir(settings.warehouse_dir),
    )
    # What each part is made from, recorded beside it once written (see `current_parts`).
    made_from = _made_from(d, _person_inputs(settings))
    for authority in authorities:
        write_json_atomic(part_path(settings, "persons", authority, ".json"), made_from)
    return [(targets[a], rows[a]) for a in authorities]


def long_term_support(
    settings: Settings, authorities: list[str]
) -> list[tuple[storage.Location, int]]:
    """The private lists of persons that some local authorities' social care extracts show
    receiving long-term support at the reference date, one part each."""
    tables = {}
    for authority in authorities:
        conformed, _ = warehouse_paths(settings.warehouse_dir, "asc_cld", authority)
        if storage.exists(conformed) and settings.inputs:
            verify_conformed(settings, "asc_cld", authority)
        tables[authority] = conformed if storage.exists(conformed) else None
    d = reference_date(settings)
    targets = {a: part_path(settings, "long_term_support", a) for a in authorities}
    rows = build_long_term_support(tables, d, targets, storage.scratch_dir(settings.warehouse_dir))
    for authority in authorities:
        write_json_atomic(
            part_path(settings, "long_term_support", authority, ".json"),
            _made_from(d, _support_inputs(settings, authority)),
        )
    return [(targets[a], rows[a]) for a in authorities]


def _part_problem(settings: Settings, table: str, part: str, expected: dict) -> str | None:
    """Why a part cannot be used, if so: not made, or made from other than `expected`."""
    made_from = part_path(settings, table, part, ".json")
    if not storage.exists(part_path(settings, table, part)) or not storage.exists(made_from):
        return f"{table} of {part} not made yet"
    if json.loads(storage.read_text(made_from)) != expected:
        return f"{table} of {part} made from other extracts or another reference date"
    return None


def _conformed_problem(settings: Settings, authority: str) -> str | None:
    """Why the conformed social care extract of an authority is not the one this run reads,
    if so."""
    if not storage.exists(sidecar_path(settings.warehouse_dir, "asc_cld", authority)):
        return f"asc_cld of {authority} not conformed yet"
    try:
        verify_conformed(settings, "asc_cld", authority)
    except InputsChanged:
        return f"asc_cld of {authority} conformed from another extract"
    return None


def current_parts(settings: Settings) -> tuple[list[storage.Location], list[storage.Location]]:
    """Every part the national counts need, each checked to be made from the current extracts
    at the reference date: the persons of each authority in the register and of the
    unlocated, and the supported persons of each authority sending social care data. Raises
    `PartsNotCurrent` naming every part that is missing or out of date."""
    for source in NATIONAL_PERSON_SOURCES:
        verify_conformed(settings, source)
    residents = [*register_authorities(settings), UNLOCATED]
    senders = social_care_authorities(settings)
    d = reference_date(settings)
    person_inputs = _made_from(d, _person_inputs(settings))
    problems = [_part_problem(settings, "persons", part, person_inputs) for part in residents]
    for authority in senders:
        problems.append(
            _conformed_problem(settings, authority)
            or _part_problem(
                settings,
                "long_term_support",
                authority,
                _made_from(d, _support_inputs(settings, authority)),
            )
        )
    problems = [p for p in problems if p]
    if problems:
        raise PartsNotCurrent(
            "the national counts need every local authority's part, made from the current "
            f"extracts; materialise these partitions first: {'; '.join(problems)}"
        )
    return (
        [part_path(settings, "persons", part) for part in residents],
        [part_path(settings, "long_term_support", a) for a in senders],
    )


def persons_parts(settings: Settings) -> list[storage.Location]:
    """The person tables made so far of the authorities in the register and of the unlocated,
    current or not (for checks that need no completeness)."""
    parts = [
        part_path(settings, "persons", p) for p in [*register_authorities(settings), UNLOCATED]
    ]
    return [path for path in parts if storage.exists(path)]


def implausible_shares(settings: Settings, measure: str) -> tuple[list[str], dict[str, float]]:
    """Categories whose share of persons is far from the expected one (a warning, not an
    error: real areas differ); the problems and the observed shares."""
    from indices.reference import reference_path

    expected = pd.read_csv(reference_path("frailty/plausible_shares.csv"))
    expected = expected[expected["measure"] == measure]
    column, age = {"efi": ("efi_category", 65), "hfrs": ("hfrs_band", 75)}[measure]
    files = ", ".join(map(sql_str, persons_parts(settings)))
    observed = dict(
        query_rows(
            f"SELECT {column}, count(*) / sum(count(*)) OVER () FROM "
            f"read_parquet([{files}]) WHERE age >= {age} GROUP BY 1"
        )
    )
    problems = [
        f"{row.category}: {observed.get(row.category, 0):.1%}, expected about "
        f"{row.expected_share:.0%} ± {row.tolerance:.0%}"
        for row in expected.itertuples()
        if abs(observed.get(row.category, 0) - row.expected_share) > row.tolerance
    ]
    return problems, {k: round(v, 4) for k, v in observed.items() if k is not None}


def withheld(settings: Settings, persons_files: list[storage.Location]) -> Withheld:
    """What the area counts must withhold, given the ledgers and the authorities covered."""
    files = ", ".join(map(sql_str, persons_files))
    covered = [
        row[0]
        for row in query_rows(
            f"SELECT DISTINCT lad19_code FROM read_parquet([{files}]) "
            "WHERE lad19_code IS NOT NULL ORDER BY 1"
        )
    ]
    return withheld_measures(settings.warehouse_dir, covered, social_care_authorities(settings))


def area_counts(settings: Settings) -> tuple[storage.Location, int, Withheld]:
    """The private, exact counts per LSOA, LAD and England, and what they withhold: from every
    authority's part, all made from the current extracts (else `PartsNotCurrent`)."""
    persons_files, supported = current_parts(settings)
    reasons = withheld(settings, persons_files)
    path, rows = build_area_counts(settings.warehouse_dir, persons_files, supported, reasons)
    write_json_atomic(area_counts_path(settings, ".json"), _area_counts_made_from(settings))
    return path, rows, reasons


def area_counts_path(settings: Settings, suffix: str = ".parquet") -> storage.Location:
    """The private exact area counts, or (suffix `.json`) the record of what they were made from."""
    return storage.join(settings.warehouse_dir, "measures", f"area_counts{suffix}")


def _area_counts_made_from(settings: Settings) -> dict:
    senders = [_support_inputs(settings, a)[0] for a in social_care_authorities(settings)]
    return _made_from(reference_date(settings), _person_inputs(settings) + senders)


def current_area_counts(settings: Settings) -> storage.Location:
    """The area counts, checked to be made from this run's extracts at its reference date (else
    `PartsNotCurrent`): what is published from them is then of one run's inputs, whatever other
    runs share the warehouse."""
    made_from = area_counts_path(settings, ".json")
    if not storage.exists(made_from) or json.loads(
        storage.read_text(made_from)
    ) != _area_counts_made_from(settings):
        raise PartsNotCurrent(
            "measures/area_counts was not made from this run's extracts at its reference date: "
            "materialise measures/area_counts again"
        )
    return area_counts_path(settings)


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


def sidecars(settings: Settings, source: str) -> list[dict]:
    """The sidecars of a conformed source: one, or one per authority in force for a source sent
    by each local authority (a part not conformed yet is left out; `current_parts` guards)."""
    if source not in AUTHORITY_SOURCES:
        return [verify_conformed(settings, source)]
    return [
        verify_conformed(settings, source, authority)
        for authority in social_care_authorities(settings)
        if storage.exists(sidecar_path(settings.warehouse_dir, source, authority))
    ]


def lineage_inputs(
    settings: Settings, sources: tuple[str, ...] = GP_SOURCES, reference: bool = True
) -> list[dict]:
    """Every raw extract (from the conformed sidecars) and reference file that fed a dataset."""
    from indices.reference import reference_path

    inputs = [
        i for source in sources for sidecar in sidecars(settings, source) for i in sidecar["inputs"]
    ]
    if reference:
        inputs += [input_record(reference_path(r), f"reference/{r}") for r in REFERENCE_FILES]
    return inputs


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


def ledger_table(settings: Settings) -> pa.Table:
    """The exact ingest ledger of this run's conformed tables, long format: private (small
    counts of a file's rows may concern a handful of persons); see `published_ledger_table`."""
    records = [
        row
        for source in SOURCES
        for sidecar in sidecars(settings, source)
        for row in sidecar["ledger"]
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


def ledger_problems(settings: Settings) -> list[str]:
    """Files whose rows conformed plus quarantined differ from their data rows counted afresh,
    or that this run did not decide to read."""
    problems = []
    for source in SOURCES:
        extracts = {e.path.name: e for e in in_force(settings, source)}
        accounted: dict[str, int] = {}
        for row in (r for sidecar in sidecars(settings, source) for r in sidecar["ledger"]):
            if row["outcome"] in ("conformed", "quarantined"):
                accounted[row["file"]] = accounted.get(row["file"], 0) + row["rows"]
        for name, rows in accounted.items():
            if name not in extracts:
                problems.append(f"{name}: conformed, but not an extract this run reads")
                continue
            read = count_data_rows(extracts[name])
            if read != rows:
                problems.append(f"{name}: {read} data rows, {rows} accounted for")
    return problems


def linkage_rate(results: list[SourceResult]) -> float | None:
    """Share of a person-level source's rows (over all the results given) that could be linked
    to a person in the GP register: conformed rows over those plus rows set aside for a missing,
    invalid or unknown NHS number."""
    unlinked = sum(
        e.quarantined[r]
        for result in results
        for e in result.ledger
        for r in ("no_nhs_number", "invalid_nhs_number", "unknown_person")
    )
    conformed = sum(result.rows_conformed for result in results)
    total = conformed + unlinked
    return conformed / total if total else None


def publish_area(settings: Settings, dataset: AreaDataset, run_id: str | None = None) -> Release:
    """Write, audit and publish one area dataset from the private counts, disclosure controlled
    together with the other area datasets and audited against their previous releases by the
    deployment's method (`INDICES_DISCLOSURE`); the audit's cells go to the private warehouse."""
    counts_path = current_area_counts(settings)
    d = reference_date(settings)
    datasets = {a.level: a.name for a in AREA_DATASETS}
    release = area_release(counts_path, method_from_env(), settings.publish_dir, datasets)
    write_json_atomic(
        storage.join(settings.warehouse_dir, "measures", "disclosure_audit.json"), release.details
    )
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
    uses_warehouse = bool(index_warehouse_inputs(spec))
    if uses_warehouse:  # the area counts, the one warehouse table an index may read
        current_area_counts(settings)
    data = load_inputs(spec, settings.warehouse_dir, publish_dir=settings.publish_dir)
    result = compute(spec, data)
    inputs = [
        input_record(
            resolve_path(spec, i.path, settings.warehouse_dir, settings.publish_dir),
            f"index input/{i.path}",
        )
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
