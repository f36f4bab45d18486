"""Pandera schemas of the conformed tables: the single definition of their columns.

Each schema gives the columns' types, nullability, checks and descriptions. The same schema
validates the conformed Parquet (in bounded batches), gives Dagster its table schema and
writes the data dictionary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from indices.reference import lsoa_lookup

PERSON_ID = pa.Column(
    str,
    pa.Check.str_matches(r"^[0-9a-f]{32}$"),
    nullable=False,
    description="keyed pseudonym of the NHS number (HMAC-SHA256, 32 hex characters)",
)
SEX_CODES = ("1", "2", "9", "X")


def _date(description: str, nullable: bool = False) -> pa.Column:
    return pa.Column("datetime64[ms]", nullable=nullable, coerce=True, description=description)


def _lsoa_column() -> pa.Column:
    return pa.Column(
        str,
        pa.Check.isin(set(lsoa_lookup()["lsoa11_code"])),
        nullable=True,
        description="LSOA 2011 of residence; null when blank or not in the reference lookup",
    )


def conformed_schemas() -> dict[str, pa.DataFrameSchema]:
    """The schema of each conformed table, keyed by source name."""
    return {
        "gp_patients": pa.DataFrameSchema(
            {
                "person_id": PERSON_ID,
                "date_of_birth": _date("date of birth"),
                "sex": pa.Column(
                    str,
                    pa.Check.isin(SEX_CODES),
                    description="NHS person stated gender: 1 male, 2 female, 9 indeterminate, "
                    "X not known (also any code outside the vocabulary)",
                ),
                "lsoa11_code": _lsoa_column(),
                "practice_code": pa.Column(
                    str, nullable=True, description="ODS code of the GP practice"
                ),
                "registration_start": _date("start of the registration"),
                "registration_end": _date("end of the registration; null while registered", True),
                "date_of_death": _date("date of death; null if alive", True),
            },
            name="gp_patients",
            description="GP patient register, one row per registration, pseudonymised.",
        ),
        "gp_events": pa.DataFrameSchema(
            {
                "person_id": PERSON_ID,
                "event_date": _date("date of the coded entry"),
                "snomed_code": pa.Column(
                    str,
                    pa.Check.str_matches(r"^[0-9]{6,18}$"),
                    description="SNOMED CT concept id (6 to 18 digits)",
                ),
                "value": pa.Column(float, nullable=True, description="value, if the code has one"),
                "unit": pa.Column(str, nullable=True, description="unit of the value"),
            },
            name="gp_events",
            description="GP coded clinical events, one row per entry, pseudonymised.",
        ),
        "gp_medications": pa.DataFrameSchema(
            {
                "person_id": PERSON_ID,
                "issue_date": _date("date the prescription was issued"),
                "bnf_code": pa.Column(
                    str,
                    pa.Check.str_matches(r"^[0-9A-Z]{9,15}$"),
                    description="BNF presentation code; its first 9 characters name the substance",
                ),
            },
            name="gp_medications",
            description="GP prescription issues, one row per issue, pseudonymised.",
        ),
    }


def iter_batches(path: Path, batch_rows: int = 250_000) -> Iterator[pd.DataFrame]:
    """A Parquet file as pandas frames of bounded size, dates as datetime64."""
    with pq.ParquetFile(path) as parquet:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            yield batch.to_pandas(date_as_object=False)


def validate_parquet(schema: pa.DataFrameSchema, path: Path) -> list[str]:
    """Validate a Parquet file batch by batch; the failures found, as readable lines (max 20)."""
    problems: list[str] = []
    expected = list(schema.columns)
    actual = pq.read_schema(path).names
    if actual != expected:
        return [f"columns are {actual}, schema expects {expected}"]
    for batch in iter_batches(path):
        try:
            schema.validate(batch, lazy=True)
        except pa.errors.SchemaErrors as errors:
            cases = errors.failure_cases
            for row in cases.head(20 - len(problems)).itertuples():
                problems.append(f"{row.column}: {row.check} failed for {row.failure_case!r}")
        if len(problems) >= 20:
            break
    return problems
