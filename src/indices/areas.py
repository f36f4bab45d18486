"""Area counts: persons per LSOA, per lower-tier local authority and for England.

The private counts (`measures/area_counts.parquet`) are exact. The published datasets pass them
through disclosure control first and compute rates from the rounded counts. Persons with no known
LSOA count towards England only; local authorities count persons, not rounded LSOA counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from indices import storage
from indices.availability import Withheld
from indices.disclosure import DISCLOSURE_MACROS
from indices.duck import connect, copy_to_parquet, sql_str
from indices.measures.persons import person_measures_sql
from indices.reference import reference_path

LEVELS = ("lsoa", "lad", "england")


@dataclass(frozen=True)
class Count:
    name: str
    condition: str
    measure: str  # what it needs: population, efi, hfrs or lts (see `indices.availability`)
    description: str


@dataclass(frozen=True)
class Rate:
    name: str
    numerators: tuple[str, ...]
    denominator: str
    description: str


COUNTS = (
    Count("pop_65plus", "age >= 65", "population", "persons aged 65+ in the population at D"),
    Count("efi_fit", "efi_category = 'fit'", "efi", "persons 65+ with 0-4 eFI deficits (fit)"),
    Count("efi_mild", "efi_category = 'mild'", "efi", "persons 65+ with 5-8 eFI deficits (mild)"),
    Count(
        "efi_moderate",
        "efi_category = 'moderate'",
        "efi",
        "persons 65+ with 9-12 eFI deficits (moderate frailty)",
    ),
    Count(
        "efi_severe",
        "efi_category = 'severe'",
        "efi",
        "persons 65+ with 13 or more eFI deficits (severe frailty)",
    ),
    Count("pop_75plus", "age >= 75", "population", "persons aged 75+ in the population at D"),
    Count("hfrs_low", "hfrs_band = 'low'", "hfrs", "persons 75+ with an HFRS below 5"),
    Count(
        "hfrs_intermediate",
        "hfrs_band = 'intermediate'",
        "hfrs",
        "persons 75+ with an HFRS from 5 to 15 inclusive",
    ),
    Count("hfrs_high", "hfrs_band = 'high'", "hfrs", "persons 75+ with an HFRS above 15"),
    Count(
        "lts_65plus",
        "long_term_support",
        "lts",
        "persons 65+ receiving long-term social care support at D",
    ),
)
RATES = (
    Rate(
        "efi_moderate_severe_rate",
        ("efi_moderate", "efi_severe"),
        "pop_65plus",
        "share of persons 65+ moderately or severely frail by the eFI",
    ),
    Rate(
        "hfrs_intermediate_high_rate",
        ("hfrs_intermediate", "hfrs_high"),
        "pop_75plus",
        "share of persons 75+ at intermediate or high HFRS risk",
    ),
    Rate(
        "lts_65plus_rate",
        ("lts_65plus",),
        "pop_65plus",
        "share of persons 65+ receiving long-term social care support",
    ),
)
# Category counts that must add up to their population before rounding.
PARTITIONS = {
    "pop_65plus": ("efi_fit", "efi_mild", "efi_moderate", "efi_severe"),
    "pop_75plus": ("hfrs_low", "hfrs_intermediate", "hfrs_high"),
}


def area_counts_sql(persons: str, withheld: Withheld) -> str:
    """Exact counts per LSOA, per LAD and for England over the persons (a query, see
    `person_measures_sql`), one row per area with a `level`; a count whose inputs are missing is
    null and `withheld_reason` says why."""
    lookup = sql_str(reference_path("geography/lsoa11_lad19.csv"))
    sums = ", ".join(f"count(*) FILTER (WHERE {c.condition}) AS {c.name}" for c in COUNTS)
    zero_filled = ", ".join(f"coalesce(c.{c.name}, 0) AS {c.name}" for c in COUNTS)
    names = ", ".join(f"c.{c.name}" for c in COUNTS)
    guarded = ", ".join(
        f"CASE WHEN {withheld.condition(c.measure)} THEN NULL ELSE {c.name} END AS {c.name}"
        for c in COUNTS
    )
    return f"""
    WITH persons AS ({persons}),
    lookup AS (SELECT lsoa11_code, lad19_code FROM read_csv({lookup}, all_varchar = true)),
    covered AS (SELECT DISTINCT lad19_code FROM persons WHERE lad19_code IS NOT NULL),
    by_lsoa AS (SELECT lsoa11_code, {sums} FROM persons WHERE lsoa11_code IS NOT NULL GROUP BY 1),
    by_lad AS (SELECT lad19_code, {sums} FROM persons WHERE lad19_code IS NOT NULL GROUP BY 1),
    exact AS (
        SELECT 'lsoa' AS level, l.lsoa11_code AS area_code, l.lad19_code, {zero_filled}
        FROM lookup l JOIN covered USING (lad19_code) LEFT JOIN by_lsoa c USING (lsoa11_code)
        UNION ALL
        SELECT 'lad', c.lad19_code, c.lad19_code, {names} FROM by_lad c
        UNION ALL
        SELECT 'england', 'E92000001', NULL, {sums} FROM persons
    )
    SELECT level, area_code, lad19_code, {guarded}, {withheld.reason_sql()} AS withheld_reason
    FROM exact
    ORDER BY level, area_code
    """


def build_area_counts(
    warehouse_dir: storage.Location,
    persons: list[storage.Location],
    supported: list[storage.Location],
    withheld: Withheld,
) -> tuple[storage.Location, int]:
    """Write the private, exact area counts of the persons (every part) and the persons
    receiving long-term support (every part); their path and row count."""
    target = storage.join(warehouse_dir, "measures", "area_counts.parquet")
    con = connect(storage.scratch_dir(warehouse_dir))
    try:
        query = area_counts_sql(person_measures_sql(persons, supported), withheld)
        return target, copy_to_parquet(con, query, target)
    finally:
        con.close()


def published_area_sql(area_counts: storage.Location, level: str, reference_date: date) -> str:
    """A published area dataset: keys, rounded or suppressed counts, flags and rates."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    keys = {
        "lsoa": "area_code AS lsoa11_code, lad19_code",
        "lad": "area_code AS lad19_code",
        "england": "area_code AS country_code",
    }[level]
    counts = ", ".join(f"sdc_count({c.name}) AS {c.name}" for c in COUNTS)
    flags = ", ".join(f"sdc_suppressed({c.name}) AS {c.name}_suppressed" for c in COUNTS)
    rates = ", ".join(
        f"CASE WHEN {r.denominator} > 0 THEN ({' + '.join(r.numerators)}) / {r.denominator} END "
        f"AS {r.name}"
        for r in RATES
    )
    return f"""
    WITH rounded AS (
        SELECT {keys}, DATE {sql_str(reference_date)} AS reference_date, {counts}, {flags},
               withheld_reason
        FROM read_parquet({sql_str(area_counts)}) WHERE level = {sql_str(level)}
    )
    SELECT *, {rates} FROM rounded
    """


def published_area_table(
    area_counts: storage.Location, level: str, reference_date: date, con: duckdb.DuckDBPyConnection
):
    """The published dataset of one level as an Arrow table."""
    con.execute(DISCLOSURE_MACROS)
    return con.sql(published_area_sql(area_counts, level, reference_date)).to_arrow_table()


def column_descriptions() -> dict[str, str]:
    """Descriptions of every published area column, for manifests and Dagster metadata."""
    described = {
        "lsoa11_code": "LSOA 2011 code",
        "lad19_code": "lower-tier local authority 2019 code",
        "country_code": "E92000001 (England)",
        "reference_date": "the date the counts are as at",
        "withheld_reason": "why some counts are null although nothing was suppressed: an "
        "extract they need was rejected or not delivered; null when nothing was withheld",
    }
    for c in COUNTS:
        described[c.name] = (
            c.description + "; disclosure controlled (null if 1-7, else rounded to 5); null "
            "also when withheld (see withheld_reason)"
        )
        described[c.name + "_suppressed"] = f"true when {c.name} was 1-7 and is published as null"
    for r in RATES:
        described[r.name] = r.description + "; null when a count is suppressed or the base is 0"
    return described
