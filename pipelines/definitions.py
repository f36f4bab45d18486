"""The code location: every asset, check, job and schedule of the pipeline."""

import dagster as dg

from pipelines.assets import conformed, indices, measures, published
from pipelines.resources import IndicesSettings

main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.all(),
    description="Conform every source, compute the measures and publish every dataset.",
)

nightly = dg.ScheduleDefinition(
    name="nightly",
    job=main_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The whole pipeline every night at 02:00 UK time.",
)

defs = dg.Definitions.merge(
    conformed.definitions,
    measures.definitions,
    published.definitions,
    indices.definitions,
    dg.Definitions(
        jobs=[main_job],
        schedules=[nightly],
        resources={"settings": IndicesSettings()},
    ),
)
