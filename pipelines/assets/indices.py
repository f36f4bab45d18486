"""Composite indices: one asset per spec file in data/reference/indices/."""

from pathlib import Path

import dagster as dg

from indices import steps, storage
from indices.composite.release import REPORT
from indices.composite.report import report_markdown
from indices.composite.spec import load_spec
from pipelines.failures import permanent_failures
from pipelines.metadata import COMMON
from pipelines.resources import IndicesSettings


def _upstream(table: str) -> dg.AssetKey:
    """`measures/area_counts.parquet` → the asset `measures/area_counts`."""
    return dg.AssetKey(table.removesuffix(".parquet").split("/"))


def index_asset(spec_path: Path) -> dg.AssetsDefinition:
    spec = load_spec(spec_path)

    @dg.asset(
        key=["indices", spec.name],
        group_name="indices",
        kinds={"duckdb", "parquet"},
        **COMMON,
        deps=[_upstream(t) for t in steps.index_warehouse_inputs(spec)],
        description=f"{spec.title}. {spec.description}".strip(),
        metadata={"spec": dg.MetadataValue.path(str(spec_path))},
    )
    def _index(context: dg.AssetExecutionContext, settings: IndicesSettings):
        with permanent_failures():
            result, releases = steps.build_and_publish_index(
                settings.resolve(), spec_path, run_id=context.run.run_id
            )
        units = releases["units"]
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(report_markdown(result)),
                "report_page": dg.MetadataValue.path(str(storage.join(units.path, REPORT))),
                "dagster/row_count": len(result.units),
                "weights": dg.MetadataValue.json(result.weights),
                "imputed": dg.MetadataValue.json(result.imputed),
                **{
                    f"release_{role}": dg.MetadataValue.text(f"{r.dataset} {r.version}")
                    for role, r in releases.items()
                },
            }
        )

    return _index


definitions = dg.Definitions(assets=[index_asset(p) for p in steps.index_spec_paths()])
