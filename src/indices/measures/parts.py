"""Person-level work, one local authority at a time: each part holds the persons resident in an
authority (and, apart, those with no known LSOA) or supported by its social care extract, with
a record of what it was made from. The national counts read every part, and only parts made
from the run's extracts at its reference date (`current_parts`), so a late or missing part
stops them instead of skewing them."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pandas as pd

from indices.core import storage, warehouse
from indices.core.duck import query_rows, write_json_atomic
from indices.core.reference import reference_path
from indices.core.settings import Settings
from indices.measures.persons import UNLOCATED, build_long_term_support, build_persons
from indices.sources.conformed import social_care_authorities, verify_conformed
from indices.sources.inputs import InputsChanged, reference_date
from indices.sources.registry import NATIONAL_PERSON_SOURCES

# -- the run's inputs ------------------------------------------------------------------------------
# Within a run every step reads what the run decided when it started (`settings.inputs`, see
# `indices.sources.inputs`); the library used on its own decides afresh at each call.


# -- partitions by local authority ---------------------------------------------------------------
# Person-level work runs one lower-tier local authority at a time: the persons resident in it
# (and, apart, those with no known LSOA), and the persons its own social care extract supports.
# The national counts read every part, and only parts made from the current extracts at the
# reference date (`current_parts`), so a late or missing part stops them instead of skewing them.


# -- composite indices ---------------------------------------------------------------------------


class PartsNotCurrent(ValueError):
    """Some authority's part is missing or was made from other extracts; the message names them."""


def register_authorities(settings: Settings) -> list[str]:
    """The local authorities of every LSOA in the conformed GP register."""
    register = warehouse.conformed(settings.warehouse_dir, "gp_patients")
    rows = query_rows(
        "SELECT DISTINCT g.lad19_code FROM read_parquet($register) r "
        "JOIN lsoa_lookup g USING (lsoa11_code) ORDER BY 1",
        {"register": str(register)},
        lookup=True,
    )
    return [lad for (lad,) in rows]


def made_from_record(d: date, sidecars: list[storage.Location]) -> dict:
    """What a part is made from: the reference date and a hash of its inputs' sidecars."""
    digest = hashlib.sha256()
    for path in sidecars:
        digest.update(storage.read_bytes(path) if storage.exists(path) else b"absent")
    return {"reference_date": d.isoformat(), "inputs": digest.hexdigest()}


def person_inputs(settings: Settings) -> list[storage.Location]:
    return [warehouse.sidecar(settings.warehouse_dir, s) for s in NATIONAL_PERSON_SOURCES]


def support_inputs(settings: Settings, authority: str) -> list[storage.Location]:
    return [warehouse.sidecar(settings.warehouse_dir, "asc_cld", authority)]


def persons(settings: Settings, authorities: list[str]) -> list[tuple[storage.Location, int]]:
    """The private person tables as at the reference date of some local authorities' residents
    (`UNLOCATED`: the persons with no known LSOA), with their eFI and HFRS, one part each."""
    if settings.inputs:  # within a run: its own conformed tables, not another run's
        for source in NATIONAL_PERSON_SOURCES:
            verify_conformed(settings, source)
    d = reference_date(settings)
    targets = {
        a: warehouse.measures_part(settings.warehouse_dir, "persons", a) for a in authorities
    }
    rows = build_persons(
        settings.warehouse_dir,
        d,
        targets,
        warehouse.scratch(settings.warehouse_dir),
    )
    # What each part is made from, recorded beside it once written (see `current_parts`).
    made_from = made_from_record(d, person_inputs(settings))
    for authority in authorities:
        write_json_atomic(
            warehouse.measures_part(settings.warehouse_dir, "persons", authority, ".json"),
            made_from,
        )
    return [(targets[a], rows[a]) for a in authorities]


def long_term_support(
    settings: Settings, authorities: list[str]
) -> list[tuple[storage.Location, int]]:
    """The private lists of persons that some local authorities' social care extracts show
    receiving long-term support at the reference date, one part each."""
    tables = {}
    for authority in authorities:
        conformed = warehouse.conformed(settings.warehouse_dir, "asc_cld", authority)
        if storage.exists(conformed) and settings.inputs:
            verify_conformed(settings, "asc_cld", authority)
        tables[authority] = conformed if storage.exists(conformed) else None
    d = reference_date(settings)
    targets = {
        a: warehouse.measures_part(settings.warehouse_dir, "long_term_support", a)
        for a in authorities
    }
    rows = build_long_term_support(tables, d, targets, warehouse.scratch(settings.warehouse_dir))
    for authority in authorities:
        write_json_atomic(
            warehouse.measures_part(
                settings.warehouse_dir, "long_term_support", authority, ".json"
            ),
            made_from_record(d, support_inputs(settings, authority)),
        )
    return [(targets[a], rows[a]) for a in authorities]


def _part_problem(settings: Settings, table: str, part: str, expected: dict) -> str | None:
    """Why a part cannot be used, if so: not made, or made from other than `expected`."""
    made_from = warehouse.measures_part(settings.warehouse_dir, table, part, ".json")
    if not storage.exists(
        warehouse.measures_part(settings.warehouse_dir, table, part)
    ) or not storage.exists(made_from):
        return f"{table} of {part} not made yet"
    if json.loads(storage.read_text(made_from)) != expected:
        return f"{table} of {part} made from other extracts or another reference date"
    return None


def _conformed_problem(settings: Settings, authority: str) -> str | None:
    """Why the conformed social care extract of an authority is not the one this run reads,
    if so."""
    if not storage.exists(warehouse.sidecar(settings.warehouse_dir, "asc_cld", authority)):
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
    expected = made_from_record(d, person_inputs(settings))
    problems = [_part_problem(settings, "persons", part, expected) for part in residents]
    for authority in senders:
        problems.append(
            _conformed_problem(settings, authority)
            or _part_problem(
                settings,
                "long_term_support",
                authority,
                made_from_record(d, support_inputs(settings, authority)),
            )
        )
    problems = [p for p in problems if p]
    if problems:
        raise PartsNotCurrent(
            "the national counts need every local authority's part, made from the current "
            f"extracts; materialise these partitions first: {'; '.join(problems)}"
        )
    return (
        [warehouse.measures_part(settings.warehouse_dir, "persons", part) for part in residents],
        [warehouse.measures_part(settings.warehouse_dir, "long_term_support", a) for a in senders],
    )


def persons_parts(settings: Settings) -> list[storage.Location]:
    """The person tables made so far of the authorities in the register and of the unlocated,
    current or not (for checks that need no completeness)."""
    parts = [
        warehouse.measures_part(settings.warehouse_dir, "persons", p)
        for p in [*register_authorities(settings), UNLOCATED]
    ]
    return [path for path in parts if storage.exists(path)]


def implausible_shares(settings: Settings, measure: str) -> tuple[list[str], dict[str, float]]:
    """Categories whose share of persons is far from the expected one (a warning, not an
    error: real areas differ); the problems and the observed shares."""

    expected = pd.read_csv(reference_path("frailty/plausible_shares.csv"))
    expected = expected[expected["measure"] == measure]
    column, age = {"efi": ("efi_category", 65), "hfrs": ("hfrs_band", 75)}[measure]
    observed = dict(
        query_rows(
            f"SELECT {column}, count(*) / sum(count(*)) OVER () FROM read_parquet($files) "
            "WHERE age >= $age GROUP BY 1",
            {"files": [str(p) for p in persons_parts(settings)], "age": age},
        )
    )
    problems = [
        f"{row.category}: {observed.get(row.category, 0):.1%}, expected about "
        f"{row.expected_share:.0%} ± {row.tolerance:.0%}"
        for row in expected.itertuples()
        if abs(observed.get(row.category, 0) - row.expected_share) > row.tolerance
    ]
    return problems, {k: round(v, 4) for k, v in observed.items() if k is not None}


def efi_categories_65plus(persons: list[storage.Location]) -> dict[str | None, int]:
    """Persons aged 65+ per eFI category in some person tables."""
    rows = query_rows(
        "SELECT efi_category, count(*) FROM read_parquet($files) WHERE age >= 65 "
        "GROUP BY 1 ORDER BY 1",
        {"files": [str(path) for path in persons]},
    )
    return dict(rows)


def repeated_persons(settings: Settings) -> int:
    """How many rows of the person tables made so far repeat a person (0: each person appears
    once, in one authority's part)."""
    rows = query_rows(
        "SELECT count(*) - count(DISTINCT person_id) FROM read_parquet($files)",
        {"files": [str(path) for path in persons_parts(settings)]},
    )
    return rows[0][0]
