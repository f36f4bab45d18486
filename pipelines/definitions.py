"""The code location: every asset, check, job, schedule and sensor of the pipeline."""

import dagster as dg

from indices.sources import inputs as run_inputs
from indices.sources import registry
from indices.sources.extracts import RawFolderError
from pipelines.assets import conformed, indices, measures, published, raw
from pipelines.assets.raw import TRANSIENT_RETRY, raw_key
from pipelines.executors import executor_from_environment
from pipelines.partitions import range_tags, sync_authorities
from pipelines.resources import IndicesSettings
from pipelines.sensors import make_new_extracts_sensor

EXECUTOR = executor_from_environment()
PARTITIONED = [
    dg.AssetKey(["conformed", "asc_cld"]),
    dg.AssetKey(["measures", "long_term_support"]),
    dg.AssetKey(["measures", "persons"]),
]

main_job = dg.define_asset_job(
    "main",
    # The raw sources too: every run observes the extracts it reads, so what it materialises
    # records their data versions and is not shown stale afterwards.
    selection=dg.AssetSelection.all() | dg.AssetSelection.assets(*map(raw_key, registry.SOURCES)),
    description="Observe the raw extracts, conform every source, compute the measures and "
    "publish every dataset. Person-level assets are partitioned by local authority: a run "
    "covers a range of authorities (the schedule and `indices run`: all of them), or one.",
    # Assets set their own retry policy; this covers the rest (index assets, checks).
    op_retry_policy=TRANSIENT_RETRY,
    executor_def=EXECUTOR,
)

# The partitioned job: one local authority's person-level work. A backfill of every partition
# fans out one run per authority (after the national extracts are conformed); the national
# outputs then run once, from every part.
authority_job = dg.define_asset_job(
    "authority",
    selection=dg.AssetSelection.assets(*PARTITIONED),
    description="One local authority's person-level work: its social care extract, the "
    "persons it supports, and its residents' measures.",
    op_retry_policy=TRANSIENT_RETRY,
    executor_def=EXECUTOR,
)


@dg.schedule(
    name="nightly",
    job=main_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The whole pipeline every night at 02:00 UK time, over every local authority "
    "(new ones in the raw folder become partitions first), reading the extracts in force at "
    "02:00 (recorded on the run as tags).",
)
def nightly(
    context: dg.ScheduleEvaluationContext, settings: IndicesSettings
) -> dg.RunRequest | dg.SkipReason:
    try:
        run = run_inputs.start_run(settings.folders())
    except RawFolderError as error:
        return dg.SkipReason(f"raw folder unusable, no run: {error}")
    keys = sync_authorities(context.instance, run)
    if not keys:
        return dg.SkipReason("no local authority in the raw folder: no register extract yet?")
    return dg.RunRequest(tags={**range_tags(keys), **run.inputs.tags()})


new_extracts = make_new_extracts_sensor(main_job)

defs = dg.Definitions.merge(
    raw.definitions,
    conformed.definitions,
    measures.definitions,
    published.definitions,
    indices.definitions,
    dg.Definitions(
        jobs=[main_job, authority_job],
        schedules=[nightly],
        sensors=[new_extracts],
        resources={"settings": IndicesSettings()},
    ),
)
