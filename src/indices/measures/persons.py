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

import duckdb
import pandas as pd

from indices.core import storage, warehouse
from indices.core.duck import connect, copy_to_parquet, ident
from indices.core.reference import efi_deficits, load_lsoa_lookup, reference_path
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


# Residents of some authorities, over the lookup row `g` of a person's LSOA: see
# `residents_parameters`.
RESIDENTS = (
    "($everyone OR list_contains(CAST($authorities AS VARCHAR[]), g.lad19_code) "
    "OR ($unlocated AND g.lad19_code IS NULL))"
)
PERSONS_SQL = Path(__file__).with_name("persons.sql")


def residents_parameters(authorities: list[str] | None) -> dict:
    """The parameters of `RESIDENTS` for the residents of these authorities (`UNLOCATED` among
    them: the persons with no known LSOA), or for everyone (None)."""
    chosen = authorities or []
    return {
        "everyone": authorities is None,
        "authorities": [a for a in chosen if a != UNLOCATED],
        "unlocated": UNLOCATED in chosen,
    }


def load_frailty_reference(con: duckdb.DuckDBPyConnection) -> None:
    """The reference data of the measures, once per connection: the LSOA lookup and the eFI
    codes as views of their files, the eFI categories, HFRS weights (integer tenths) and HFRS
    bands as registered tables."""
    load_lsoa_lookup(con)
    con.read_csv(str(reference_path("frailty/efi_snomed_codes.csv")), all_varchar=True).create_view(
        "efi_codes", replace=True
    )
    con.register(
        "efi_bands",
        pd.DataFrame(
            [(b.name, b.lowest, b.highest) for b in efi_categories()],
            columns=["band", "lowest", "highest"],
        ),
    )
    con.register(
        "hfrs_weights",
        pd.DataFrame(list(hfrs_weights().items()), columns=["icd10_3char", "tenths"]),
    )
    # Open ends as bounds no score reaches: a band is `lowest <= tenths <= highest`.
    con.register(
        "hfrs_bands",
        pd.DataFrame(
            [
                (
                    b.name,
                    -1 if b.lowest is None else b.lowest,
                    1_000_000 if b.highest is None else b.highest,
                )
                for b in hfrs_bands()
            ],
            columns=["band", "lowest", "highest"],
        ),
    )


def persons_query(
    con: duckdb.DuckDBPyConnection,
    warehouse_dir: storage.Location,
    reference_date: date,
    authorities: list[str] | None = None,
) -> tuple[str, dict]:
    """The person table as at `reference_date` (`persons.sql`), over the conformed tables of a
    warehouse made views of this connection, for the residents of some lower-tier local
    authorities (see `residents_parameters`) or everyone (None): the query and its parameters."""
    for view, source in (
        ("register", "gp_patients"),
        ("events", "gp_events"),
        ("medications", "gp_medications"),
        ("episodes", "hes_apc"),
    ):
        con.read_parquet(str(warehouse.conformed(warehouse_dir, source))).create_view(
            view, replace=True
        )
    load_frailty_reference(con)
    deficits = efi_deficits()["deficit_id"].tolist()
    flags = ",\n".join(
        f"CASE WHEN p.age >= 65 THEN coalesce(bool_or(x.deficit_id = $deficit_{i}), false) END "
        f"AS {ident(deficit_column(deficit))}"
        for i, deficit in enumerate(deficits)
    )
    query = PERSONS_SQL.read_text().format(
        age=age_sql("c.date_of_birth", "$d"),
        residents=RESIDENTS,
        deficit_flags=flags,
        diagnoses=", ".join(f"diag_4_{i:02d}" for i in range(1, 21)),
    )
    parameters = {
        "d": reference_date,
        "one_year_before": years_before(reference_date, 1),
        "two_years_before": years_before(reference_date, 2),
        "polypharmacy": POLYPHARMACY,
        "substances": POLYPHARMACY_SUBSTANCES,
        "deficits": len(deficits),
        **{f"deficit_{i}": deficit for i, deficit in enumerate(deficits)},
        **residents_parameters(authorities),
    }
    return query, parameters


def long_term_support_query(
    social_care: list[storage.Location], reference_date: date
) -> tuple[str, dict]:
    """The persons receiving long-term support at D in some social care tables: the query and
    its parameters."""
    if not social_care:
        return "SELECT CAST(NULL AS VARCHAR) AS person_id WHERE false", {}
    query = """
    SELECT DISTINCT person_id FROM read_parquet($files)
    WHERE event_type = 'Service' AND starts_with(service_type, 'Long Term Support')
      AND event_start_date <= $d AND (event_end_date IS NULL OR event_end_date >= $d)
    ORDER BY person_id
    """
    return query, {"files": [str(path) for path in social_care], "d": reference_date}


def person_measures_query(
    persons: list[storage.Location], supported: list[storage.Location]
) -> tuple[str, dict]:
    """The persons (all parts given) with `long_term_support` from the supported persons (all
    parts given): true or false from age 65, null below. The query and its parameters."""
    if not persons:
        raise ValueError("no persons table to read")
    support = (
        "SELECT DISTINCT person_id FROM read_parquet($supported)"
        if supported
        else "SELECT CAST(NULL AS VARCHAR) AS person_id WHERE false"
    )
    query = f"""
    SELECT p.*, CASE WHEN p.age >= 65 THEN s.person_id IS NOT NULL END AS long_term_support
    FROM read_parquet($persons) p LEFT JOIN ({support}) s USING (person_id)
    """
    parameters = {"persons": [str(path) for path in persons]}
    if supported:
        parameters["supported"] = [str(path) for path in supported]
    return query, parameters


def build_persons(
    warehouse_dir: storage.Location,
    reference_date: date,
    targets: dict[str, storage.Location],
    scratch: Path | None = None,
) -> dict[str, int]:
    """Write the person table of each authority's residents (see `persons_query`) to its
    target; the rows written per authority. The measures are computed once for all of them, so
    one step over many authorities reads the national events once, not once per authority."""
    con = connect(scratch)
    try:
        query, parameters = persons_query(con, warehouse_dir, reference_date, list(targets))
        con.execute(f"CREATE TEMP TABLE persons AS {query}", parameters)
        return {
            authority: copy_to_parquet(
                con,
                # `g`: the table carries each person's lad19_code, as the lookup row does.
                f"SELECT * FROM persons g WHERE {RESIDENTS} ORDER BY person_id",
                target,
                scratch,
                residents_parameters([authority]),
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
        rows = {}
        for authority, table in social_care.items():
            query, parameters = long_term_support_query([table] if table else [], reference_date)
            rows[authority] = copy_to_parquet(con, query, targets[authority], scratch, parameters)
        return rows
    finally:
        con.close()
