"""Pandera schemas of the conformed tables, generated from the source declarations.

Each column's type, nullability, checks and description come from its declaration in
`indices.sources.registry` and the rules of its kind (`indices.sources.kinds`). The same schema
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

from indices.sources.pseudonym import mask_nhs_numbers
from indices.sources.registry import SOURCES


@cache
def conformed_schemas() -> dict[str, pa.DataFrameSchema]:
    """The schema of each conformed table, keyed by source name."""
    return {name: source.pandera_schema() for name, source in SOURCES.items()}


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
