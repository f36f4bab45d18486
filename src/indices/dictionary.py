"""The data dictionary, written from the source declarations and the published column
descriptions, so it cannot drift from them."""

from __future__ import annotations

from indices.areas.counts import COUNTS, RATES, column_descriptions
from indices.sources.registry import SOURCES, AddedColumn
from indices.sources.schemas import column_type, conformed_schemas


def data_dictionary() -> str:
    """Markdown: every conformed (private) table and every published dataset, column by column."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from the source declarations in `src/indices/sources/registry.py` (through the",
        "pandera schemas they give) and the published column descriptions in",
        "`src/indices/areas/counts.py` by `indices dictionary`; a test keeps it current.",
        "",
        "## Conformed tables (private warehouse)",
        "",
    ]
    for name, schema in conformed_schemas().items():
        source = SOURCES[name]
        needed = ", ".join(c.name for c in source.columns if c.needed)
        sent = "one per local authority" if source.by_authority else "one national extract"
        use = "required: a run does not start without it" if source.required else "optional"
        feeds = ", ".join(source.feeds) or "no published figure"
        lines += [
            f"### `{name}`",
            "",
            schema.description,
            f"Raw files `{name}/{source.file_pattern}.csv|csv.gz|parquet`, {sent}; {use}; "
            f"feeds {feeds}.",
            f"Raw columns a file must have (else it is rejected): {needed}.",
            "",
            "| column | raw column | kind | type | null | description |",
            "|---|---|---|---|---|---|",
        ]
        for declared in source.conformed_columns:
            column = schema.columns[declared.output]
            raw = "(added)" if isinstance(declared, AddedColumn) else f"`{declared.name}`"
            nullable = "yes" if column.nullable else "no"
            lines.append(
                f"| `{declared.output}` | {raw} | {declared.kind.name} | {column_type(column)} "
                f"| {nullable} | {column.description} |"
            )
        lines.append("")
    described = column_descriptions()
    lines += [
        "## Published area datasets (`frailty_lsoa`, `frailty_lad`, `frailty_england`)",
        "",
        "| column | description |",
        "|---|---|",
    ]
    names = ["lsoa11_code", "lad19_code", "country_code", "reference_date"]
    names += [c.name for c in COUNTS] + [f"{c.name}_suppressed" for c in COUNTS]
    names += [r.name for r in RATES] + ["withheld_reason"]
    lines += [f"| `{name}` | {described[name]} |" for name in names]
    return "\n".join(lines) + "\n"
