"""Pandera schemas of the conformed tables: the single definition of their columns.

Each schema gives the columns' types, nullability, checks and descriptions. The same schema
validates the conformed Parquet (in bounded batches), gives Dagster its table schema and
writes the data dictionary.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq

from indices.core.reference import lsoa_lookup, vocabulary
from indices.sources.pseudonym import mask_nhs_numbers

PERSON_ID = pa.Column(
    str,
    pa.Check.str_matches(r"^[0-9a-f]{32}$"),
    nullable=False,
    description="keyed pseudonym of the NHS number (HMAC-SHA256, 32 hex characters)",
)


def _date(description: str, nullable: bool = False) -> pa.Column:
    # Checked, not coerced: pandera coerces to nanosecond timestamps, which end in 2262, and a
    # conformed date may be as late as 9999-12-31 (an open end). Dates arrive as datetime64[ms].
    return pa.Column("datetime64[ms]", nullable=nullable, coerce=False, description=description)


def _text(description: str, nullable: bool = True, *checks: pa.Check) -> pa.Column:
    return pa.Column(str, list(checks), nullable=nullable, description=description)


def _number(description: str) -> pa.Column:
    return pa.Column(float, nullable=True, coerce=True, description=description)


def _vocabulary(source: str, column: str, description: str, nullable: bool = False) -> pa.Column:
    from indices.sources.layouts import LAYOUTS

    raw = next(c for c in LAYOUTS[source].columns if c.output == column)
    allowed = vocabulary(raw.vocabulary)
    return _text(f"{description} (one of {', '.join(allowed)})", nullable, pa.Check.isin(allowed))


def _lsoa_column() -> pa.Column:
    return pa.Column(
        str,
        pa.Check.isin(set(lsoa_lookup()["lsoa11_code"])),
        nullable=True,
        description="LSOA 2011 of residence; null when blank or not in the reference lookup",
    )


ICD10 = pa.Check.str_matches(r"^[A-Z][0-9]{2}[0-9]?$")


@cache
def conformed_schemas() -> dict[str, pa.DataFrameSchema]:
    """The schema of each conformed table, keyed by source name."""
    return {
        "gp_patients": pa.DataFrameSchema(
            {
                "person_id": PERSON_ID,
                "date_of_birth": _date("date of birth"),
                "sex": _vocabulary(
                    "gp_patients",
                    "sex",
                    "NHS person stated gender code; X (not known) also for a code outside the "
                    "vocabulary",
                ),
                "lsoa11_code": _lsoa_column(),
                "practice_code": _text("ODS code of the GP practice"),
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
                "snomed_code": _text(
                    "SNOMED CT concept id (6 to 18 digits)",
                    False,
                    pa.Check.str_matches(r"^[0-9]{6,18}$"),
                ),
                "value": _number("value, if the code has one"),
                "unit": _text("unit of the value"),
            },
            name="gp_events",
            description="GP coded clinical events, one row per entry, pseudonymised.",
        ),
        "gp_medications": pa.DataFrameSchema(
            {
                "person_id": PERSON_ID,
                "issue_date": _date("date the prescription was issued"),
                "bnf_code": _text(
                    "BNF presentation code; its first 9 characters name the chemical substance",
                    False,
                    pa.Check.str_matches(r"^[0-9A-Z]{9,15}$"),
                ),
            },
            name="gp_medications",
            description="GP prescription issues, one row per issue, pseudonymised.",
        ),
        "hes_apc": pa.DataFrameSchema(
            {
                "person_id": PERSON_ID,
                "epikey": _text("unique episode key", False),
                "admidate": _date("admission date; null for none or a HES sentinel", True),
                "epistart": _date("episode start"),
                "epiend": _date("episode end; null for none or a HES sentinel", True),
                "disdate": _date("discharge date; null while in hospital or a sentinel", True),
                "admimeth": _vocabulary(
                    "hes_apc", "admimeth", "admission method; null when outside the list", True
                ),
                **{
                    f"diag_4_{i:02d}": _text(
                        f"ICD-10 diagnosis position {i}, normalised: upper case, no dot, three "
                        "characters and a fourth only when it is a digit; null when blank or "
                        "not a code",
                        True,
                        ICD10,
                    )
                    for i in range(1, 21)
                },
            },
            name="hes_apc",
            description="Hospital admitted patient care episodes (HES APC), pseudonymised.",
        ),
        "asc_cld": pa.DataFrameSchema(
            {
                "la_code": _text("the sending local authority's code", False),
                "person_id": PERSON_ID,
                "client_id": _text("the authority's own person identifier"),
                "gender": _vocabulary("asc_cld", "gender", "gender as the authority records it"),
                "event_type": _vocabulary(
                    "asc_cld", "event_type", "event type; null when outside the list", True
                ),
                "event_start_date": _date("start of the event"),
                "event_end_date": _date("end of the event; null while open", True),
                "service_type": _vocabulary(
                    "asc_cld", "service_type", "service type; null when blank or unknown", True
                ),
                "primary_support_reason": _text("primary support reason"),
                "source_file": _text("the authority's extract file this row came from", False),
            },
            name="asc_cld",
            description="Adult social care client level data, one row per event, from every "
            "local authority's current extract, pseudonymised.",
        ),
        "fingertips": pa.DataFrameSchema(
            {
                "indicator_id": pa.Column(int, coerce=True, description="indicator id"),
                "indicator_name": _text("indicator name"),
                "area_code": _text(
                    "ONS area code (E92 England, E12 region, E06-E10 authorities)",
                    False,
                    pa.Check.str_matches(r"^E[0-9]{8}$"),
                ),
                "area_type": _text("area type"),
                "sex": _text("Persons, Male or Female"),
                "age": _text("age band, e.g. 65+ yrs"),
                "time_period": _text("time period, e.g. 2022/23", False),
                "value": _number("indicator value; null when suppressed or missing"),
                "lower_ci_95_0_limit": _number("lower 95% confidence limit"),
                "upper_ci_95_0_limit": _number("upper 95% confidence limit"),
                "count": _number("numerator count"),
                "denominator": _number("denominator"),
                "value_note": _text("note on the value, e.g. suppressed for disclosure control"),
            },
            name="fingertips",
            description="Public health profile indicators (Fingertips), long format.",
        ),
    }


def column_type(column: pa.Column) -> str:
    """A plain type name for documentation and Dagster's table schema."""
    dtype = str(column.dtype)
    if dtype.startswith("datetime64"):
        return "date"
    return {"str": "text", "float64": "double", "int64": "integer"}.get(dtype, dtype)


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
                problem = f"{row.column}: {row.check} failed for {row.failure_case!r}"
                problems.append(mask_nhs_numbers(problem))  # a failing value may be free text
        if len(problems) >= 20:
            break
    return problems
