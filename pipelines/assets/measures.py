"""Person-level measures (private) and exact area counts (private)."""

import dagster as dg

from indices import steps, storage
from indices.duck import query_rows, sql_str
from pipelines.assets.raw import TRANSIENT_RETRY
from pipelines.metadata import COMMON
from pipelines.resources import IndicesSettings

CONFORMED = [dg.AssetKey(["conformed", s]) for s in steps.PERSON_SOURCES]


@dg.asset(
    key=["measures", "persons"],
    group_name="measures",
    kinds={"duckdb", "parquet"},
    **COMMON,
    retry_policy=TRANSIENT_RETRY,
    deps=CONFORMED,
    description="One row per person in the population at the reference date: age, sex, area, "
    "eFI deficits and category. Private: never published.",
)
def persons(settings: IndicesSettings) -> dg.MaterializeResult:
    resolved = settings.resolve()
    path, rows = steps.persons(resolved)
    shares = query_rows(
        f"SELECT efi_category, count(*) FROM read_parquet({sql_str(path)}) "
        "WHERE age >= 65 GROUP BY 1 ORDER BY 1"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "reference_date": str(steps.reference_date(resolved)),
            "efi_categories_65plus": dg.MetadataValue.json({k: v for k, v in shares}),
        }
    )


@dg.asset_check(asset=persons, blocking=True, description="Each person appears once.")
def one_row_per_person(settings: IndicesSettings) -> dg.AssetCheckResult:
    path = storage.join(settings.resolve().warehouse_dir, "measures", "persons.parquet")
    duplicates = query_rows(
        f"SELECT count(*) - count(DISTINCT person_id) FROM read_parquet({sql_str(path)})"
    )[0][0]
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicates": duplicates})


def plausible_shares_check(measure: str, label: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=persons,
        name=f"{measure}_shares_plausible",
        blocking=False,
        description=f"{label} shares are near the published ones (a warning only).",
    )
    def _check(settings: IndicesSettings) -> dg.AssetCheckResult:
        problems, observed = steps.implausible_shares(settings.resolve(), measure)
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
    deps=[persons],
    description="Exact counts per LSOA, local authority and England, before disclosure "
    "control. Private: the published datasets are made from it.",
)
def area_counts(context: dg.AssetExecutionContext, settings: IndicesSettings):
    path, rows, withheld = steps.area_counts(settings.resolve())
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
    path = storage.join(settings.resolve().warehouse_dir, "measures", "area_counts.parquet")
    problems = steps.partition_problems(path)
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": len(problems)})


@dg.asset_check(
    asset=area_counts,
    blocking=True,
    description="Every LSOA of every covered local authority has a row.",
)
def every_lsoa_present(settings: IndicesSettings) -> dg.AssetCheckResult:
    path = storage.join(settings.resolve().warehouse_dir, "measures", "area_counts.parquet")
    missing = steps.missing_lsoas(path)
    return dg.AssetCheckResult(
        passed=not missing, metadata={"missing": len(missing), "first": ", ".join(missing[:5])}
    )


definitions = dg.Definitions(
    assets=[persons, area_counts],
    asset_checks=[
        one_row_per_person,
        plausible_shares_check("efi", "eFI category (65+)"),
        plausible_shares_check("hfrs", "HFRS band (75+)"),
        categories_add_up,
        every_lsoa_present,
    ],
)
