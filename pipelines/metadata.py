"""Turning library objects into Dagster metadata."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa

_TYPES = {"datetime64[ms]": "date", "str": "string", "float64": "double"}


def table_schema(schema: pa.DataFrameSchema) -> dg.TableSchema:
    """A pandera schema as Dagster's table schema (shown in the UI's column view)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                _TYPES.get(str(column.dtype), str(column.dtype)),
                description=column.description or "",
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for name, column in schema.columns.items()
        ]
    )


def markdown_table(frame: pd.DataFrame) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_none_")
