"""The person-level tables: the population at the reference date with each person's eFI and
HFRS, one part per local authority of residence; and the persons receiving long-term social care
support, one part per sending authority. Joined, they are one row per person in the population.

Private: they live in the warehouse only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from indices.core import storage
from indices.core.duck import connect, copy_to_parquet, sql_str
from indices.core.reference import efi_deficits, reference_path
from indices.measures.dates import age_sql, years_before

POLYPHARMACY = "polypharmacy"
POLYPHARMACY_SUBSTANCES = 5  # distinct BNF chemical substances issued in the year to D
# The part of the persons with no known LSOA, who are counted at national level only.
UNLOCATED = "unlocated"


@dataclass(frozen=True)
class Band:
    name: str
    lowest: int
    highest: int


def efi_categories() -> list[Band]:
    """eFI categories by deficit count, read from `index_bands.csv` ("0-4 of 36")."""
    bands = pd.read_csv(reference_path("frailty/index_bands.csv"))
    result = []
    for row in bands[bands["index"] == "efi"].itertuples():
        lowest, highest = re.match(r"(\d+)-(\d+) of 36", row.equivalent_deficit_count).groups()
        result.append(Band(row.band, int(lowest), int(highest)))
    return result


@dataclass(frozen=True)
class TenthsBand:
    """An HFRS band in integer tenths of a point: `lowest` and `highest` inclusive, None open."""

    name: str
    lowest: int | None
    highest: int | None


def tenths(text: str) -> int:
    """A decimal written with at most one decimal place, as exact integer tenths ("7.1" → 71)."""
    whole, _, fraction = text.strip().partition(".")
    if len(fraction) > 1 or not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"expected a number with at most one decimal place, got {text!r}")
    return int(whole) * 10 + int(fraction or 0)


def hfrs_weights() -> dict[str, int]:
    """HFRS weights per three-character ICD-10 group, in integer tenths."""
    weights = pd.read_csv(reference_path("frailty/hfrs_icd10_weights.csv"), dtype=str)
    return {row.icd10_3char: tenths(row.weight) for row in weights.itertuples()}


def hfrs_bands() -> list[TenthsBand]:
    """HFRS bands from `index_bands.csv`, with their inclusive edges in tenths."""
    bands = pd.read_csv(reference_path("frailty/index_bands.csv"), dtype=str, keep_default_na=False)
    result = []
    for row in bands[bands["index"] == "hfrs"].itertuples():
        lowest = highest = None
        if row.lower:
            lowest = tenths(row.lower) + (0 if row.lower_inclusive == "true" else 1)
        if row.upper:
            highest = tenths(row.upper) - (0 if row.upper_inclusive == "true" else 1)
        result.append(TenthsBand(row.band, lowest, highest))
    return result


def deficit_column(deficit_id: str) -> str:
    """The person table's flag column of one eFI deficit, e.g. `efi_activity_limitation`."""
    return "efi_" + deficit_id.replace("-", "_")


def residents_sql(authorities: list[str]) -> str:
    """SQL, over the lookup row `g` of a person's LSOA, true for residents of the authorities
    (`UNLOCATED` among them: the persons with no known LSOA)."""
    codes = [a for a in authorities if a != UNLOCATED]
    terms = [f"g.lad19_code IN ({', '.join(map(sql_str, codes))})"] if codes else []
    terms += ["g.lad19_code IS NULL"] if UNLOCATED in authorities else []
    return f"({' OR '.join(terms) or 'false'})"


def persons_sql(
    conformed: storage.Location, reference_date: date, authorities: list[str] | None = None
) -> str:
    """SQL for the person table as at `reference_date`, exactly as the definitions say: the
    residents of some lower-tier local authorities (see `residents_sql`), or everyone (None)."""

    def table(source: str) -> str:
        return f"read_parquet({sql_str(storage.join(conformed, f'{source}.parquet'))})"

    d = f"DATE {sql_str(reference_date)}"
    one_year_before = f"DATE {sql_str(years_before(reference_date, 1))}"
    two_years_before = f"DATE {sql_str(years_before(reference_date, 2))}"
    deficits = efi_deficits()["deficit_id"].tolist()
    flags = ",\n".join(
        f"CASE WHEN p.age >= 65 THEN coalesce(bool_or(x.deficit_id = {sql_str(i)}), false) END "
        f"AS {deficit_column(i)}"
        for i in deficits
    )
    categories = " ".join(
        f"WHEN efi_deficits BETWEEN {b.lowest} AND {b.highest} THEN {sql_str(b.name)}"
        for b in efi_categories()
    )
    hfrs_band = " ".join(
        f"WHEN hfrs_tenths BETWEEN {b.lowest if b.lowest is not None else -1} "
        f"AND {b.highest if b.highest is not None else 1_000_000} THEN {sql_str(b.name)}"
        for b in hfrs_bands()
    )
    weights = ", ".join(f"({sql_str(code)}, {w})" for code, w in hfrs_weights().items())
    diagnoses = ", ".join(f"diag_4_{i:02d}" for i in range(1, 21))
    codes = sql_str(reference_path("frailty/efi_snomed_codes.csv"))
    lookup = sql_str(reference_path("geography/lsoa11_lad19.csv"))
    residents = "true" if authorities is None else residents_sql(authorities)
    return f"""
    WITH register AS (SELECT * FROM {table("gp_patients")}),
    died AS (SELECT DISTINCT person_id FROM register WHERE date_of_death <= {d}),
    covering AS (
        SELECT *, row_number() OVER (
            PARTITION BY person_id
            ORDER BY registration_start DESC, lsoa11_code ASC NULLS LAST, practice_code
        ) AS pick
        FROM register
        WHERE registration_start <= {d}
          AND (registration_end IS NULL OR registration_end > {d})
          AND person_id NOT IN (SELECT person_id FROM died)
    ),
    population AS (
        SELECT c.person_id, c.lsoa11_code, g.lad19_code, c.sex,
               {age_sql("c.date_of_birth", d)} AS age
        FROM covering c
        LEFT JOIN read_csv({lookup}, all_varchar = true) g USING (lsoa11_code)
        WHERE c.pick = 1 AND {residents}
    ),
    older AS (SELECT person_id FROM population WHERE age >= 65),
    coded AS (
        SELECT DISTINCT e.person_id, c.deficit_id
        FROM {table("gp_events")} e
        JOIN read_csv({codes}, all_varchar = true) c USING (snomed_code)
        WHERE e.event_date <= {d} AND e.person_id IN (SELECT person_id FROM older)
    ),
    polypharmacy AS (
        SELECT person_id, {sql_str(POLYPHARMACY)} AS deficit_id
        FROM {table("gp_medications")}
        WHERE issue_date > {one_year_before} AND issue_date <= {d}
          AND person_id IN (SELECT person_id FROM older)
        GROUP BY person_id
        HAVING count(DISTINCT substr(bnf_code, 1, 9)) >= {POLYPHARMACY_SUBSTANCES}
    ),
    present AS (SELECT * FROM coded UNION ALL SELECT * FROM polypharmacy),
    flagged AS (
        SELECT p.person_id, p.lsoa11_code, p.lad19_code, p.sex, p.age,
               CASE WHEN p.age >= 65 THEN count(x.deficit_id) END AS efi_deficits,
               {flags}
        FROM population p LEFT JOIN present x USING (person_id)
        GROUP BY p.person_id, p.lsoa11_code, p.lad19_code, p.sex, p.age
    ),
    hfrs_weights(icd10_3char, tenths) AS (VALUES {weights}),
    episode_groups AS (
        SELECT DISTINCT person_id, substr(code, 1, 3) AS icd10_3char
        FROM (
            SELECT person_id, {diagnoses} FROM {table("hes_apc")}
            WHERE epistart > {two_years_before} AND epistart <= {d}
              AND person_id IN (SELECT person_id FROM population WHERE age >= 75)
        ) UNPIVOT (code FOR position IN ({diagnoses}))
    ),
    hfrs AS (
        SELECT person_id, sum(tenths) AS hfrs_tenths
        FROM episode_groups JOIN hfrs_weights USING (icd10_3char) GROUP BY person_id
    ),
    measured AS (
        SELECT f.*, CASE WHEN f.age >= 75 THEN coalesce(h.hfrs_tenths, 0) END AS hfrs_tenths
        FROM flagged f LEFT JOIN hfrs h USING (person_id)
    )
    SELECT m.person_id, m.lsoa11_code, m.lad19_code, m.age, m.sex,
           m.efi_deficits,
           m.efi_deficits / {len(deficits)} AS efi,
           CASE {categories} END AS efi_category,
           CAST(m.hfrs_tenths AS INTEGER) AS hfrs_tenths,
           CASE {hfrs_band} END AS hfrs_band,
           m.* EXCLUDE (person_id, lsoa11_code, lad19_code, age, sex, efi_deficits, hfrs_tenths)
    FROM measured m
    ORDER BY m.person_id
    """


def long_term_support_sql(social_care: list[storage.Location], reference_date: date) -> str:
    """SQL for the persons receiving long-term support at D in some social care tables."""
    if not social_care:
        return "SELECT CAST(NULL AS VARCHAR) AS person_id WHERE false"
    d = f"DATE {sql_str(reference_date)}"
    files = ", ".join(sql_str(path) for path in social_care)
    return f"""
    SELECT DISTINCT person_id FROM read_parquet([{files}])
    WHERE event_type = 'Service' AND starts_with(service_type, 'Long Term Support')
      AND event_start_date <= {d} AND (event_end_date IS NULL OR event_end_date >= {d})
    ORDER BY person_id
    """


def person_measures_sql(persons: list[storage.Location], supported: list[storage.Location]) -> str:
    """The persons (all parts given) with `long_term_support` from the supported persons (all
    parts given): true or false from age 65, null below."""
    if not persons:
        raise ValueError("no persons table to read")
    files = ", ".join(sql_str(path) for path in persons)
    support = (
        f"SELECT DISTINCT person_id FROM read_parquet([{', '.join(map(sql_str, supported))}])"
        if supported
        else "SELECT CAST(NULL AS VARCHAR) AS person_id WHERE false"
    )
    return f"""
    SELECT p.*, CASE WHEN p.age >= 65 THEN s.person_id IS NOT NULL END AS long_term_support
    FROM read_parquet([{files}]) p LEFT JOIN ({support}) s USING (person_id)
    """


def build_persons(
    conformed: storage.Location,
    reference_date: date,
    targets: dict[str, storage.Location],
    scratch: Path | None = None,
) -> dict[str, int]:
    """Write the person table of each authority's residents (see `persons_sql`) to its target;
    the rows written per authority. The measures are computed once for all of them, so one
    step over many authorities reads the national events once, not once per authority."""
    con = connect(scratch)
    try:
        con.execute(
            "CREATE TEMP TABLE persons AS " + persons_sql(conformed, reference_date, list(targets))
        )
        return {
            authority: copy_to_parquet(
                con,
                # `g`: the table carries each person's lad19_code, as the lookup row does.
                f"SELECT * FROM persons g WHERE {residents_sql([authority])} ORDER BY person_id",
                target,
                scratch,
            )
            for authority, target in targets.items()
        }
    finally:
        con.close()


def build_long_term_support(
    social_care: dict[str, storage.Location | None],
    reference_date: date,
    targets: dict[str, storage.Location],
    scratch: Path | None = None,
) -> dict[str, int]:
    """Write, for each authority, the persons its social care table (None: it sent none) shows
    receiving long-term support at D, to its target; the rows written per authority."""
    con = connect(scratch)
    try:
        return {
            authority: copy_to_parquet(
                con,
                long_term_support_sql([table] if table else [], reference_date),
                targets[authority],
                scratch,
            )
            for authority, table in social_care.items()
        }
    finally:
        con.close()
