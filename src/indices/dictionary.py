"""The data dictionary, written from the schemas so it cannot drift from them."""

from __future__ import annotations

from indices.areas.counts import COUNTS, RATES, column_descriptions
from indices.sources.layouts import LAYOUTS
from indices.sources.schemas import column_type, conformed_schemas


def data_dictionary() -> str:
    """Markdown: every conformed (private) table and every published dataset, column by column."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from the pandera schemas in `src/indices/sources/schemas.py` and the published",
        "column descriptions in `src/indices/areas/counts.py` by `indices dictionary`; a test keeps",
        "it current.",
        "",
        "## Conformed tables (private warehouse)",
        "",
    ]
    for source, schema in conformed_schemas().items():
        needed = ", ".join(c.name for c in LAYOUTS[source].columns if c.needed)
        lines += [
            f"### `{source}`",
            "",
            schema.description,
            f"Raw columns a file must have (else it is rejected): {needed}.",
            "",
            "| column | type | null | description |",
            "|---|---|---|---|",
        ]
        for name, column in schema.columns.items():
            kind = column_type(column)
            nullable = "yes" if column.nullable else "no"
            lines.append(f"| `{name}` | {kind} | {nullable} | {column.description} |")
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
