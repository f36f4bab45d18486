"""The code location: every asset, check, job, schedule and sensor of the pipeline."""

import dagster as dg

from indices import steps
from pipelines.assets import conformed, indices, measures, published, raw
from pipelines.assets.raw import TRANSIENT_RETRY, raw_key
from pipelines.resources import IndicesSettings
from pipelines.sensors import make_new_extracts_sensor

# Runs launched from the UI, the schedule or the sensor run each step in its own process, forked
# from a server that has imported the code location once (a step starts in well under a second
# instead of re-importing everything: the demo run takes about 1 min 20 s, not 4 min). Two steps
# at once, as each DuckDB step may use INDICES_DUCKDB_MEMORY (2 GB). `indices run` and the tests
# run the job in-process.
EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}},
    }
)

main_job = dg.define_asset_job(
    "main",
    # The raw sources too: every run observes the extracts it reads, so what it materialises
    # records their data versions and is not shown stale afterwards.
    selection=dg.AssetSelection.all() | dg.AssetSelection.assets(*map(raw_key, steps.SOURCES)),
    description="Observe the raw extracts, conform every source, compute the measures and "
    "publish every dataset.",
    # Assets set their own retry policy; this covers the rest (index assets, checks).
    op_retry_policy=TRANSIENT_RETRY,
    executor_def=EXECUTOR,
)

nightly = dg.ScheduleDefinition(
    name="nightly",
    job=main_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The whole pipeline every night at 02:00 UK time.",
)

new_extracts = make_new_extracts_sensor(main_job)

defs = dg.Definitions.merge(
    raw.definitions,
    conformed.definitions,
    measures.definitions,
    published.definitions,
    indices.definitions,
    dg.Definitions(
        jobs=[main_job],
        schedules=[nightly],
        sensors=[new_extracts],
        resources={"settings": IndicesSettings()},
    ),
)
