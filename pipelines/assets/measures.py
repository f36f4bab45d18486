"""Person-level measures (private), made one local authority at a time, and the exact area
counts (private), made from every authority's part."""

import dagster as dg

from indices.areas import tables
from indices.core import warehouse
from indices.measures import parts
from indices.measures.persons import UNLOCATED
from indices.sources import inputs as run_inputs
from indices.sources import registry
from pipelines.assets.raw import TRANSIENT_RETRY
from pipelines.failures import permanent_failures
from pipelines.metadata import COMMON, row_count
from pipelines.partitions import ALL_AUTHORITIES, AUTHORITIES
from pipelines.resources import IndicesSettings

NATIONAL_CONFORMED = [dg.AssetKey(["conformed", s]) for s in registry.NATIONAL_PERSON_SOURCES]


def persons_metadata(settings: IndicesSettings, paths_rows: list[tuple]) -> dict:
    """Rows, reference date and eFI categories of the person tables just made (together, when a
    run made several)."""
    resolved = settings.resolve()
    categories = parts.efi_categories_65plus([path for path, _ in paths_rows])
    return {
        **row_count(sum(rows for _, rows in paths_rows), len(paths_rows)),
        "reference_date": str(run_inputs.reference_date(resolved)),
        "efi_categories_65plus": dg.MetadataValue.json(categories),
    }


@dg.asset(
    key=["measures", "persons"],
    group_name="measures",
    kinds={"duckdb", "parquet"},
    **COMMON,
    retry_policy=TRANSIENT_RETRY,
    deps=NATIONAL_CONFORMED,
    partitions_def=AUTHORITIES,
    description="One row per person in the population at the reference date living in the "
    "partition's local authority: age, sex, area, eFI deficits and category, HFRS. Private: "
    "never published.",
)
def persons(context: dg.AssetExecutionContext, settings: IndicesSettings) -> dg.MaterializeResult:
    with permanent_failures():
        made = parts.persons(settings.resolve(), context.partition_keys)
    return dg.MaterializeResult(metadata=persons_metadata(settings, made))


@dg.asset(
    key=["measures", "persons_unlocated"],
    group_name="measures",
    kinds={"duckdb", "parquet"},
    **COMMON,
    retry_policy=TRANSIENT_RETRY,
    deps=NATIONAL_CONFORMED,
    description="As `persons`, for the persons whose LSOA is blank or unknown: they count "
    "towards England only. Private: never published.",
)
def persons_unlocated(settings: IndicesSettings) -> dg.MaterializeResult:
    with permanent_failures():
        made = parts.persons(settings.resolve(), [UNLOCATED])
    return dg.MaterializeResult(metadata=persons_metadata(settings, made))


@dg.asset(
    key=["measures", "long_term_support"],
    group_name="measures",
    kinds={"duckdb", "parquet"},
    **COMMON,
    retry_policy=TRANSIENT_RETRY,
    deps=[dg.AssetKey(["conformed", "asc_cld"])],
    partitions_def=AUTHORITIES,
    description="The persons that the partition's local authority's social care extract shows "
    "receiving long-term support at the reference date. Private: never published.",
)
def long_term_support(
    context: dg.AssetExecutionContext, settings: IndicesSettings
) -> dg.MaterializeResult:
    with permanent_failures():
        resolved = settings.resolve()
        made = parts.long_term_support(resolved, context.partition_keys)
    return dg.MaterializeResult(
        metadata={
            **row_count(sum(rows for _, rows in made), len(made)),
            "reference_date": str(run_inputs.reference_date(resolved)),
        }
    )


@dg.asset_check(
    asset=persons,
    blocking=True,
    description="Each person appears once, in one authority's part.",
)
def one_row_per_person(settings: IndicesSettings) -> dg.AssetCheckResult:
    duplicates = parts.repeated_persons(settings.resolve())
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicates": duplicates})


def plausible_shares_check(measure: str, label: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=persons,
        name=f"{measure}_shares_plausible",
        blocking=False,
        description=f"{label} shares are near the published ones (a warning only).",
    )
    def _check(settings: IndicesSettings) -> dg.AssetCheckResult:
        problems, observed = parts.implausible_shares(settings.resolve(), measure)
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"observed": dg.MetadataValue.json(observed), "far": "; ".join(problems)},
        )

    return _check


@dg.asset(
    key=["measures", "area_counts"],
    group_name="measures",
    kinds={"duckdb", "parquet"},
    **COMMON,
    retry_policy=TRANSIENT_RETRY,
    deps=[
        dg.AssetDep(persons, partition_mapping=ALL_AUTHORITIES),
        persons_unlocated,
        dg.AssetDep(long_term_support, partition_mapping=ALL_AUTHORITIES),
    ],
    description="Exact counts per LSOA, local authority and England, before disclosure "
    "control, from every authority's part (it refuses parts missing or made from older "
    "extracts). Private: the published datasets are made from it.",
)
def area_counts(context: dg.AssetExecutionContext, settings: IndicesSettings):
    with permanent_failures():  # a retry cannot help when partitions must run first
        path, rows, withheld = tables.area_counts(settings.resolve())
    for line in withheld.describe():
        context.log.warning(line)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "withheld": "\n".join(withheld.describe()) or "nothing",
        }
    )


@dg.asset_check(
    asset=area_counts,
    blocking=True,
    description="Category counts add up to their population, before rounding.",
)
def categories_add_up(settings: IndicesSettings) -> dg.AssetCheckResult:
    problems = tables.partition_problems(warehouse.area_counts(settings.resolve().warehouse_dir))
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": len(problems)})


@dg.asset_check(
    asset=area_counts,
    blocking=True,
    description="Every LSOA of every covered local authority has a row.",
)
def every_lsoa_present(settings: IndicesSettings) -> dg.AssetCheckResult:
    missing = tables.missing_lsoas(warehouse.area_counts(settings.resolve().warehouse_dir))
    return dg.AssetCheckResult(
        passed=not missing, metadata={"missing": len(missing), "first": ", ".join(missing[:5])}
    )


definitions = dg.Definitions(
    assets=[persons, persons_unlocated, long_term_support, area_counts],
    asset_checks=[
        one_row_per_person,
        plausible_shares_check("efi", "eFI category (65+)"),
        plausible_shares_check("hfrs", "HFRS band (75+)"),
        categories_add_up,
        every_lsoa_present,
    ],
)
