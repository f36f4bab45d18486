"""Composite indices: one asset per spec file in data/reference/indices/."""

from pathlib import Path

import dagster as dg

from indices.composite.report import report_markdown
from indices.composite.spec import load_spec
from indices.core import storage
from indices.releases import index_release
from indices.releases.index_release import REPORT
from pipelines.failures import permanent_failures
from pipelines.metadata import COMMON
from pipelines.resources import IndicesSettings


def index_asset(spec_path: Path) -> dg.AssetsDefinition:
    spec = load_spec(spec_path)

    @dg.asset(
        key=["indices", spec.name],
        group_name="indices",
        kinds={"duckdb", "parquet"},
        **COMMON,
        deps=[dg.AssetKey(t.name.split("/")) for t in index_release.index_warehouse_inputs(spec)],
        description=f"{spec.title}. {spec.description}".strip(),
        metadata={"spec": dg.MetadataValue.path(str(spec_path))},
    )
    def _index(context: dg.AssetExecutionContext, settings: IndicesSettings):
        with permanent_failures():
            result, releases = index_release.build_and_publish_index(
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


definitions = dg.Definitions(assets=[index_asset(p) for p in index_release.index_spec_paths()])
