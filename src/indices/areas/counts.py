"""Area counts: persons per LSOA, per lower-tier local authority and for England.

The private counts (`measures/area_counts.parquet`) are exact, with each count's cell key. The
published datasets pass them through disclosure control first (`indices.areas.disclosure`, all three
levels of a release together, audited against each other and the previous release) and compute
rates from the published counts. Persons with no known LSOA count towards England only; local
authorities count persons, not rounded LSOA counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from indices.areas.availability import Withheld
from indices.areas.disclosure import (
    CELL_KEY,
    ROUNDING,
    cell_key,
)
from indices.core import storage, warehouse
from indices.core.duck import connect, copy_to_parquet
from indices.core.reference import load_lsoa_lookup
from indices.measures.persons import person_measures_query

LEVELS = ("lsoa", "lad", "england")


@dataclass(frozen=True)
class Count:
    name: str
    condition: str
    measure: str  # what it needs: population, efi, hfrs or lts (see `indices.areas.availability`)
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


def area_counts_query(persons: str) -> str:
    """Exact counts per LSOA, per LAD and for England over the persons (a query, see
    `person_measures_query`), one row per area with a `level`; a count whose inputs are missing
    (a rule of the table `withheld_rules`, `Withheld.rules`) is null and `withheld_reason` says
    why. Beside each count, `<count>_cell_key`: the sum of its persons' record keys modulo 256,
    for the cell-key method (private, like the counts). Reads the view `lsoa_lookup`."""
    keys = cell_key.RECORD_KEYS
    sums = ", ".join(
        f"count(*) FILTER (WHERE {c.condition}) AS {c.name}, "
        f"CAST(coalesce(sum(record_key) FILTER (WHERE {c.condition}), 0) % {keys} AS INTEGER) "
        f"AS {c.name}_cell_key"
        for c in COUNTS
    )
    zero_filled = ", ".join(
        f"coalesce(c.{c.name}, 0) AS {c.name}, coalesce(c.{c.name}_cell_key, 0) AS "
        f"{c.name}_cell_key"
        for c in COUNTS
    )
    names = ", ".join(f"c.{c.name}, c.{c.name}_cell_key" for c in COUNTS)

    def withheld(c: Count) -> str:  # the population withheld withholds every count
        return (
            f"list_contains(r.measures, '{c.measure}') OR list_contains(r.measures, 'population')"
        )

    guarded = ", ".join(
        f"CASE WHEN {withheld(c)} THEN NULL ELSE e.{c.name} END AS {c.name}" for c in COUNTS
    )
    guarded_keys = ", ".join(
        f"CASE WHEN {withheld(c)} THEN NULL ELSE e.{c.name}_cell_key END AS {c.name}_cell_key"
        for c in COUNTS
    )
    return f"""
    WITH persons AS (
        SELECT *, {cell_key.record_key_sql("person_id")} AS record_key FROM ({persons})
    ),
    covered AS (SELECT DISTINCT lad19_code FROM persons WHERE lad19_code IS NOT NULL),
    by_lsoa AS (SELECT lsoa11_code, {sums} FROM persons WHERE lsoa11_code IS NOT NULL GROUP BY 1),
    by_lad AS (SELECT lad19_code, {sums} FROM persons WHERE lad19_code IS NOT NULL GROUP BY 1),
    exact AS (
        SELECT 'lsoa' AS level, l.lsoa11_code AS area_code, l.lad19_code, {zero_filled}
        FROM lsoa_lookup l JOIN covered USING (lad19_code) LEFT JOIN by_lsoa c USING (lsoa11_code)
        UNION ALL
        SELECT 'lad', c.lad19_code, c.lad19_code, {names} FROM by_lad c
        UNION ALL
        SELECT 'england', 'E92000001', NULL, {sums} FROM persons
    ),
    rules AS (
        SELECT e.level, e.area_code, list(w.measure) AS measures,
               string_agg(w.measure || ': ' || w.reason, '; ' ORDER BY w."order") AS reason
        FROM exact e JOIN withheld_rules w
          ON w.scope = 'everywhere'
          OR (e.level = 'england' AND w.scope IN ('lad', 'england'))
          OR (w.scope = 'lad' AND e.lad19_code = w.lad19_code)
        GROUP BY e.level, e.area_code
    )
    SELECT e.level, e.area_code, e.lad19_code, {guarded}, r.reason AS withheld_reason,
           {guarded_keys}
    FROM exact e LEFT JOIN rules r USING (level, area_code)
    ORDER BY e.level, e.area_code
    """


def build_area_counts(
    warehouse_dir: storage.Location,
    persons: list[storage.Location],
    supported: list[storage.Location],
    withheld: Withheld,
) -> tuple[storage.Location, int]:
    """Write the private, exact area counts of the persons (every part) and the persons
    receiving long-term support (every part); their path and row count."""
    target = warehouse.area_counts(warehouse_dir)
    con = connect(warehouse.scratch(warehouse_dir))
    try:
        load_lsoa_lookup(con)
        con.register("withheld_rules", withheld.rules())
        query, parameters = person_measures_query(persons, supported)
        return target, copy_to_parquet(con, area_counts_query(query), target, None, parameters)
    finally:
        con.close()


# -- disclosure control of a release of the area datasets ----------------------------------------
# The three area datasets of a release are protected together: an attacker reads them together.
# Cells are numbered row * len(COUNTS) + count, over the rows of every level and one more row for
# the persons of unknown LSOA (never published: England less its authorities).


def column_descriptions(method: str = ROUNDING) -> dict[str, str]:
    """Descriptions of every published area column under a disclosure method, for manifests,
    Dagster metadata and the data dictionary (the default method's)."""
    described = {
        "lsoa11_code": "LSOA 2011 code",
        "lad19_code": "lower-tier local authority 2019 code",
        "country_code": "E92000001 (England)",
        "reference_date": "the date the counts are as at",
        "withheld_reason": "why some counts are null although nothing was suppressed: an "
        "extract they need was rejected or not delivered; null when nothing was withheld",
    }
    if method == CELL_KEY:
        control = (
            f"disclosure controlled by the cell-key method (within {cell_key.MAX_NOISE} of the "
            f"true count, never 1 to {cell_key.SMALL_COUNT})"
        )
        flag = "always false: the cell-key method suppresses nothing"
    else:
        control = (
            "disclosure controlled (null if 1-7, or suppressed to protect another count; else "
            "rounded to 5)"
        )
        flag = "true when {name} is published as null to protect it: it was 1-7, or it was "
        flag += "suppressed so that a count of 1-7 cannot be worked out from the others"
    for c in COUNTS:
        described[c.name] = (
            c.description + f"; {control}; null also when withheld (see withheld_reason)"
        )
        described[c.name + "_suppressed"] = flag.format(name=c.name)
    for r in RATES:
        described[r.name] = r.description + "; null when a count is suppressed or the base is 0"
    return described
