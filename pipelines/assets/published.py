"""Published area datasets: disclosure controlled, audited, released with a manifest."""

import dagster as dg

from indices.areas import tables
from indices.areas.counts import COUNTS, RATES, column_descriptions
from indices.areas.disclosure import ROUNDING
from indices.areas.release import published_problems
from indices.core import storage
from indices.core.published import list_versions, read_manifest
from indices.releases import datasets
from indices.releases.audit import audit_table
from indices.sources import conformed, registry
from pipelines.assets.raw import TRANSIENT_RETRY
from pipelines.failures import permanent_failures
from pipelines.metadata import COMMON, markdown_table, release_metadata
from pipelines.partitions import ALL_AUTHORITIES
from pipelines.resources import IndicesSettings

# Each published count comes from the same column of the private area counts, each rate from
# its counts.
AREA_COUNTS = dg.AssetKey(["measures", "area_counts"])
COLUMN_LINEAGE = dg.TableColumnLineage(
    deps_by_column={
        **{c.name: [dg.TableColumnDep(asset_key=AREA_COUNTS, column_name=c.name)] for c in COUNTS},
        **{
            r.name: [
                dg.TableColumnDep(asset_key=AREA_COUNTS, column_name=column)
                for column in (*r.numerators, r.denominator)
            ]
            for r in RATES
        },
    }
)


def published_asset(dataset: tables.AreaDataset) -> dg.Definitions:
    @dg.asset(
        key=["published", dataset.name],
        group_name="published",
        kinds={"duckdb", "parquet"},
        **COMMON,
        retry_policy=TRANSIENT_RETRY,
        deps=[dg.AssetKey(["measures", "area_counts"])],
        description=dataset.description,
    )
    def _published(context: dg.AssetExecutionContext, settings: IndicesSettings):
        with permanent_failures():
            release = datasets.publish_area(settings.resolve(), dataset, run_id=context.run.run_id)
        if not release.published:
            context.log.info(f"{dataset.name} {release.version} is up to date; nothing published")
        return dg.MaterializeResult(
            metadata={
                **release_metadata(release),
                "dagster/column_lineage": COLUMN_LINEAGE,
            },
            data_version=dg.DataVersion(release.manifest["fingerprint"]),
        )

    @dg.asset_check(
        asset=_published,
        name="disclosure_controlled",
        blocking=True,
        description="The visible release has no person-level column and every count is what "
        "its disclosure method (in its manifest) produces: under rounding 0, null (suppressed) "
        "or a multiple of 5 from 10; under the cell-key method 0 or above its small-count "
        "threshold; a null count is suppressed or withheld.",
    )
    def _disclosure_controlled(settings: IndicesSettings) -> dg.AssetCheckResult:
        publish_dir = settings.resolve().publish_dir
        latest = list_versions(publish_dir, dataset.name)[-1]
        table = storage.read_table(storage.join(publish_dir, dataset.name, latest, "data.parquet"))
        record = read_manifest(publish_dir, dataset.name, latest).get("disclosure") or {}
        method = record.get("method", ROUNDING)
        problems = audit_table(table, [c.name for c in COUNTS], method)
        problems += published_problems(table, method)
        undocumented = [c for c in table.column_names if c not in column_descriptions()]
        problems += [f"undocumented column {c}" for c in undocumented]
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "version": latest,
                "method": method,
                "problems": "; ".join(problems),
                "audit": dg.MetadataValue.json(record.get("audit") or {}),
            },
        )

    return dg.Definitions(assets=[_published], asset_checks=[_disclosure_controlled])


@dg.asset(
    key=["published", "ingest_ledger"],
    group_name="published",
    kinds={"parquet"},
    **COMMON,
    retry_policy=TRANSIENT_RETRY,
    deps=[
        dg.AssetDep(
            dg.AssetKey(["conformed", s]),
            partition_mapping=ALL_AUTHORITIES if s in registry.AUTHORITY_SOURCES else None,
        )
        for s in registry.SOURCES
    ],
    description="How every raw row was disposed of: per source and file, rows conformed, "
    "quarantined per reason, values corrected, files rejected. Counts only, published under "
    "disclosure control; the exact ledger is in this asset's metadata (`exact_ledger`), for the "
    "data engineers only.",
)
def ingest_ledger(context: dg.AssetExecutionContext, settings: IndicesSettings):
    with permanent_failures():
        release, exact = datasets.publish_ledger(settings.resolve(), run_id=context.run.run_id)
    return dg.MaterializeResult(
        metadata={
            **release_metadata(release),
            "exact_ledger": markdown_table(exact.to_pandas()),
        },
        data_version=dg.DataVersion(release.manifest["fingerprint"]),
    )


@dg.asset_check(
    asset=ingest_ledger,
    blocking=True,
    description="For every file that was used, rows conformed plus quarantined equal the data "
    "rows in the file, counted afresh from the raw extract.",
)
def rows_accounted_for(settings: IndicesSettings) -> dg.AssetCheckResult:
    problems = conformed.ledger_problems(settings.resolve())
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": "; ".join(problems)})


definitions = dg.Definitions.merge(
    *(published_asset(d) for d in tables.AREA_DATASETS),
    dg.Definitions(assets=[ingest_ledger], asset_checks=[rows_accounted_for]),
)
