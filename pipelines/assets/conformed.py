"""Conformed sources: raw extracts read, checked, pseudonymised; every row accounted for."""

import dagster as dg

from indices.core import warehouse
from indices.sources import conformed, registry
from indices.sources.conform import ledger_frame
from indices.sources.schemas import conformed_schemas, validate_parquet
from pipelines.assets.raw import TRANSIENT_RETRY, raw_key
from pipelines.failures import permanent_failures
from pipelines.metadata import COMMON, markdown_table, row_count, table_schema
from pipelines.partitions import AUTHORITIES
from pipelines.resources import IndicesSettings


def conformed_asset(source: str) -> dg.AssetsDefinition:
    """The conformed table of a source, as its declaration says (`indices.sources.registry`):
    a person-level source keeps only persons the register knows, so it waits for the register;
    one sent by each local authority is conformed one authority (partition) at a time."""
    declared = registry.SOURCES[source]
    schema = conformed_schemas()[source]
    by_authority = declared.by_authority
    upstream = [registry.REGISTER] if declared.linked_to_register else []

    @dg.asset(
        name=source,
        key_prefix="conformed",
        group_name="conformed",
        kinds={"duckdb", "parquet"},
        **COMMON,
        deps=[
            raw_key(source),
            *(dg.AssetKey(["conformed", up]) for up in upstream),
        ],
        description=declared.description
        + (" One partition per sending authority." if by_authority else ""),
        metadata={"dagster/column_schema": table_schema(schema)},
        partitions_def=AUTHORITIES if by_authority else None,
        retry_policy=TRANSIENT_RETRY,
    )
    def _conformed(context: dg.AssetExecutionContext, settings: IndicesSettings):
        with permanent_failures():
            resolved = settings.resolve()
            if by_authority:
                results = conformed.conform_by_authority(resolved, source, context.partition_keys)
            else:
                results = [conformed.conform(resolved, source)]
        entries = [entry for result in results for entry in result.ledger]
        for entry in entries:
            if entry.rejected:
                context.log.error(f"rejected {entry.rejected}")
            if entry.extra_columns:
                context.log.warning(f"{entry.file}: extra columns ignored {entry.extra_columns}")
        linkage = {}
        if declared.linked_to_register:
            rate = conformed.linkage_rate(results)
            linkage["linkage_rate_to_register"] = dg.MetadataValue.float(
                round(rate, 4) if rate is not None else float("nan")
            )
        return dg.MaterializeResult(
            metadata={
                **linkage,
                **row_count(sum(r.rows_conformed for r in results), len(results)),
                "rows_quarantined": sum(r.rows_quarantined for r in results),
                "ledger": markdown_table(ledger_frame(entries)),
                "path": dg.MetadataValue.path(str(results[0].conformed_path)),
            }
        )

    @dg.asset_check(
        asset=_conformed,
        name="matches_schema",
        blocking=True,
        description=f"The conformed table passes the pandera schema of {source}"
        + (" (every authority's part)." if by_authority else "."),
    )
    def _matches_schema(settings: IndicesSettings) -> dg.AssetCheckResult:
        warehouse_dir = settings.resolve().warehouse_dir
        parts = warehouse.conformed_parts(warehouse_dir, source) if by_authority else [None]
        problems = [
            problem
            for part in parts
            for problem in validate_parquet(
                schema, warehouse.conformed(warehouse_dir, source, part)
            )
        ]
        return dg.AssetCheckResult(
            passed=not problems, metadata={"problems": "\n".join(problems) or "none"}
        )

    return dg.Definitions(assets=[_conformed], asset_checks=[_matches_schema])


definitions = dg.Definitions.merge(*(conformed_asset(s) for s in registry.SOURCES))
