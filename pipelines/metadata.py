"""Turning library objects into Dagster metadata."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from indices.releases.publish import code_version
from indices.sources.schemas import column_type

# What every asset shares: its owner, and the library's code version, so the UI shows an asset
# as changed when the code that makes it changes.
COMMON = {"owners": ["team:data-engineering"], "code_version": code_version()}


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


def release_metadata(release) -> dict:
    """Metadata of a published release: rows, schema, version, link, lineage fingerprint."""
    manifest = release.manifest
    return {
        "dagster/row_count": manifest["row_count"],
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(c["column"], c["type"], description=c["description"])
                for c in manifest["schema"]
            ]
        ),
        "version": release.version,
        "newly_published": release.published,
        "release": dg.MetadataValue.path(str(release.path)),
        "manifest": dg.MetadataValue.path(str(release.manifest_path)),
        "reference_date": manifest["reference_date"] or "",
        "changed_inputs": "\n".join(manifest.get("changed_inputs") or []) or "none",
    }


def row_count(rows: int, partitions: int = 1) -> dict:
    """The row count of what a step made: Dagster's own entry for one partition (or none); a
    run over many partitions records the same metadata on each, so it says it is their total."""
    if partitions == 1:
        return {"dagster/row_count": rows}
    return {"rows_in_run": rows, "authorities_in_run": partitions}
