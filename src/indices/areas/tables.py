"""The area tables of a run: the exact counts per LSOA, authority and England made from every
authority's part (checked current), what they withhold, their checks, and the area datasets
they are published as."""

from __future__ import annotations

import json
from dataclasses import dataclass

from indices.areas.availability import Withheld, withheld_measures
from indices.areas.counts import (
    PARTITIONS,
    build_area_counts,
)
from indices.core import storage, warehouse
from indices.core.duck import connect, query_rows, write_json_atomic
from indices.core.settings import Settings
from indices.measures.parts import (
    PartsNotCurrent,
    current_parts,
    made_from_record,
    person_inputs,
    support_inputs,
)
from indices.sources.conformed import social_care_authorities
from indices.sources.inputs import reference_date

# -- the run's inputs ------------------------------------------------------------------------------
# Within a run every step reads what the run decided when it started (`settings.inputs`, see
# `indices.sources.inputs`); the library used on its own decides afresh at each call.


# -- partitions by local authority ---------------------------------------------------------------
# Person-level work runs one lower-tier local authority at a time: the persons resident in it
# (and, apart, those with no known LSOA), and the persons its own social care extract supports.
# The national counts read every part, and only parts made from the current extracts at the
# reference date (`current_parts`), so a late or missing part stops them instead of skewing them.


# -- composite indices ---------------------------------------------------------------------------


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


def withheld(settings: Settings, persons_files: list[storage.Location]) -> Withheld:
    """What the area counts must withhold, given the ledgers and the authorities covered."""
    rows = query_rows(
        "SELECT DISTINCT lad19_code FROM read_parquet($files) "
        "WHERE lad19_code IS NOT NULL ORDER BY 1",
        {"files": [str(path) for path in persons_files]},
    )
    covered = [lad for (lad,) in rows]
    return withheld_measures(settings.warehouse_dir, covered, social_care_authorities(settings))


def area_counts(settings: Settings) -> tuple[storage.Location, int, Withheld]:
    """The private, exact counts per LSOA, LAD and England, and what they withhold: from every
    authority's part, all made from the current extracts (else `PartsNotCurrent`)."""
    persons_files, supported = current_parts(settings)
    reasons = withheld(settings, persons_files)
    path, rows = build_area_counts(settings.warehouse_dir, persons_files, supported, reasons)
    write_json_atomic(
        warehouse.area_counts(settings.warehouse_dir, ".json"), _area_counts_made_from(settings)
    )
    return path, rows, reasons


def _area_counts_made_from(settings: Settings) -> dict:
    senders = [support_inputs(settings, a)[0] for a in social_care_authorities(settings)]
    return made_from_record(reference_date(settings), person_inputs(settings) + senders)


def current_area_counts(settings: Settings) -> storage.Location:
    """The area counts, checked to be made from this run's extracts at its reference date (else
    `PartsNotCurrent`): what is published from them is then of one run's inputs, whatever other
    runs share the warehouse."""
    made_from = warehouse.area_counts(settings.warehouse_dir, ".json")
    if not storage.exists(made_from) or json.loads(
        storage.read_text(made_from)
    ) != _area_counts_made_from(settings):
        raise PartsNotCurrent(
            "measures/area_counts was not made from this run's extracts at its reference date: "
            "materialise measures/area_counts again"
        )
    return warehouse.area_counts(settings.warehouse_dir)


def partition_problems(area_counts: storage.Location) -> list[str]:
    """Areas whose category counts do not add up to their population (before rounding)."""
    con = connect()
    try:
        problems = []
        for total, parts in PARTITIONS.items():
            # Withheld counts are null and compare as unknown: only known sums are checked.
            rows = con.execute(
                f"SELECT level, area_code, {total}, {' + '.join(parts)} FROM read_parquet($counts) "
                f"WHERE {total} <> {' + '.join(parts)}",
                {"counts": str(area_counts)},
            ).fetchall()
            problems += [
                f"{lvl} {code}: {total}={t} but categories sum to {s}" for lvl, code, t, s in rows
            ]
        return problems
    finally:
        con.close()


def missing_lsoas(area_counts: storage.Location) -> list[str]:
    """LSOAs of a covered local authority that have no row in the LSOA counts."""
    rows = query_rows(
        "SELECT l.lsoa11_code FROM lsoa_lookup l "
        "WHERE l.lad19_code IN (SELECT area_code FROM read_parquet($counts) WHERE level = 'lad') "
        "AND l.lsoa11_code NOT IN (SELECT area_code FROM read_parquet($counts) "
        "WHERE level = 'lsoa') ORDER BY 1",
        {"counts": str(area_counts)},
        lookup=True,
    )
    return [code for (code,) in rows]
