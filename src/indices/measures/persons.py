"""The person-level table: the population at the reference date and each person's measures.

Private: it lives in the warehouse only. One row per person in the population at D.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from indices.duck import connect, copy_to_parquet, sql_str
from indices.measures.dates import age_sql, years_before
from indices.reference import efi_deficits, reference_path

POLYPHARMACY = "polypharmacy"
POLYPHARMACY_SUBSTANCES = 5  # distinct BNF chemical substances issued in the year to D


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


def deficit_column(deficit_id: str) -> str:
    """The person table's flag column of one eFI deficit, e.g. `efi_activity_limitation`."""
    return "efi_" + deficit_id.replace("-", "_")


def persons_sql(patients: Path, events: Path, medications: Path, reference_date: date) -> str:
    """SQL for the person table as at `reference_date`, exactly as the definitions say."""
    d = f"DATE {sql_str(reference_date)}"
    one_year_before = f"DATE {sql_str(years_before(reference_date, 1))}"
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
    codes = sql_str(reference_path("frailty/efi_snomed_codes.csv"))
    return f"""
    WITH register AS (SELECT * FROM read_parquet({sql_str(patients)})),
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
        SELECT person_id, lsoa11_code, sex, {age_sql("date_of_birth", d)} AS age
        FROM covering WHERE pick = 1
    ),
    older AS (SELECT person_id FROM population WHERE age >= 65),
    coded AS (
        SELECT DISTINCT e.person_id, c.deficit_id
        FROM read_parquet({sql_str(events)}) e
        JOIN read_csv({codes}, all_varchar = true) c USING (snomed_code)
        WHERE e.event_date <= {d} AND e.person_id IN (SELECT person_id FROM older)
    ),
    polypharmacy AS (
        SELECT person_id, {sql_str(POLYPHARMACY)} AS deficit_id
        FROM read_parquet({sql_str(medications)})
        WHERE issue_date > {one_year_before} AND issue_date <= {d}
          AND person_id IN (SELECT person_id FROM older)
        GROUP BY person_id
        HAVING count(DISTINCT substr(bnf_code, 1, 9)) >= {POLYPHARMACY_SUBSTANCES}
    ),
    present AS (SELECT * FROM coded UNION ALL SELECT * FROM polypharmacy),
    flagged AS (
        SELECT p.person_id, p.lsoa11_code, p.sex, p.age,
               CASE WHEN p.age >= 65 THEN count(x.deficit_id) END AS efi_deficits,
               {flags}
        FROM population p LEFT JOIN present x USING (person_id)
        GROUP BY p.person_id, p.lsoa11_code, p.sex, p.age
    )
    SELECT f.person_id, f.lsoa11_code, g.lad19_code, f.age, f.sex,
           f.efi_deficits,
           f.efi_deficits / {len(deficits)} AS efi,
           CASE {categories} END AS efi_category,
           f.* EXCLUDE (person_id, lsoa11_code, age, sex, efi_deficits)
    FROM flagged f
    LEFT JOIN read_csv({sql_str(reference_path("geography/lsoa11_lad19.csv"))},
                       all_varchar = true) g USING (lsoa11_code)
    ORDER BY f.person_id
    """


def build_persons(
    warehouse_dir: Path, reference_date: date, con: duckdb.DuckDBPyConnection | None = None
) -> tuple[Path, int]:
    """Write `measures/persons.parquet` in the warehouse; its path and row count."""
    conformed = Path(warehouse_dir) / "conformed"
    query = persons_sql(
        conformed / "gp_patients.parquet",
        conformed / "gp_events.parquet",
        conformed / "gp_medications.parquet",
        reference_date,
    )
    target = Path(warehouse_dir) / "measures" / "persons.parquet"
    own = con is None
    con = con or connect(Path(warehouse_dir) / "tmp")
    try:
        rows = copy_to_parquet(con, query, target)
    finally:
        if own:
            con.close()
    return target, rows
