"""Turning library objects into Dagster metadata."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from indices.schemas import column_type


def table_schema(schema: pa.DataFrameSchema) -> dg.TableSchema:
    """A pandera schema as Dagster's table schema (shown in the UI's column view)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                column_type(column),
                description=column.description or "",
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for name, column in schema.columns.items()
        ]
    )


def markdown_table(frame: pd.DataFrame) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "_none_")
