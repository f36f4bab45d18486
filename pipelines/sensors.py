"""The `new_extracts` sensor: a new or changed extract in the raw folder starts a run of what it
makes stale."""

import hashlib
import json
import time
from pathlib import Path

import dagster as dg

from indices.sources import inputs as run_inputs
from indices.sources import registry
from indices.sources.extracts import RawFolderError, current_extracts, parse_extract_name
from pipelines.assets.raw import raw_key
from pipelines.partitions import AUTHORITIES, missing_authorities, range_tags
from pipelines.resources import IndicesSettings

MINIMUM_INTERVAL_SECONDS = 60
# A file written within this many seconds may still be being copied: wait for the next tick, so a
# half-written extract is never conformed (its truncated last line would be quarantined quietly).
SETTLE_SECONDS = 60


def snapshot(raw_dir: Path) -> dict[str, list[int]]:
    """`{"<source>/<file name>": [size, mtime_ns]}` of every extract in force: cheap to take,
    no file is read."""
    state = {}
    for source in registry.SOURCES:
        for extract in current_extracts(raw_dir, source):
            stat = extract.path.stat()
            state[f"{source}/{extract.path.name}"] = [stat.st_size, stat.st_mtime_ns]
    return state


def changed_paths(before: dict[str, list[int]], after: dict[str, list[int]]) -> set[str]:
    """Extracts in force added, removed or changed (size or modification time)."""
    return set(before) ^ set(after) | {p for p in set(before) & set(after) if before[p] != after[p]}


def changed_sources(before: dict[str, list[int]], after: dict[str, list[int]]) -> list[str]:
    """Sources with an extract in force added, removed or changed."""
    paths = changed_paths(before, after)
    return [s for s in registry.SOURCES if any(p.split("/", 1)[0] == s for p in paths)]


def stale_selection(sources: list[str]) -> dg.AssetSelection:
    """The changed raw sources, to observe them afresh, and every asset downstream of them."""
    return dg.AssetSelection.assets(*(raw_key(s) for s in sources)).downstream()


def new_authorities(
    instance: dg.DagsterInstance, settings: IndicesSettings
) -> list[dg.AddDynamicPartitionsRequest]:
    """A request to add the raw folder's authorities that are not partitions yet, if any."""
    missing = missing_authorities(instance, settings.folders())
    return [AUTHORITIES.build_add_request(missing)] if missing else []


def make_new_extracts_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name="new_extracts",
        job=job,
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every minute, compares the extracts in force in the raw folder (size and "
        "modification time) with the last tick; on a new or changed one, once it has settled, "
        "adds any new local authority as a partition and requests one run of the changed raw "
        "sources and everything downstream of them: over every authority, or only those whose "
        "social care extract changed. The first tick only records what is there (and adds the "
        "authorities).",
    )
    def new_extracts(context: dg.SensorEvaluationContext, settings: IndicesSettings):
        raw_dir = settings.folders().raw_dir
        if not raw_dir.is_dir():
            return dg.SkipReason(f"raw folder {raw_dir} does not exist")
        try:
            now = snapshot(raw_dir)
        except RawFolderError as error:
            return dg.SkipReason(f"raw folder unusable, nothing requested: {error}")
        cursor = json.dumps(now, sort_keys=True)
        if context.cursor is None:
            return dg.SensorResult(
                skip_reason=f"first tick: recorded the {len(now)} extracts in force in {raw_dir}; "
                "a new or changed one will start a run",
                cursor=cursor,
                dynamic_partitions_requests=new_authorities(context.instance, settings),
            )
        before = json.loads(context.cursor)
        changed = changed_sources(before, now)
        if not changed:
            return dg.SkipReason(f"no new or changed extract in {raw_dir}")
        paths = sorted(p for p in set(before) | set(now) if p.split("/", 1)[0] in changed)
        recent = time.time_ns() - SETTLE_SECONDS * 1_000_000_000
        settling = [p for p in paths if p in now and now[p][1] > recent]
        if settling:
            return dg.SkipReason(f"waiting for {', '.join(settling)} to settle")
        try:  # the run reads what is there now, whatever arrives before it ends
            run = run_inputs.start_run(settings.folders())
        except RawFolderError as error:
            return dg.SkipReason(f"raw folder unusable, nothing requested: {error}")
        graph = context.repository_def.asset_graph
        selected = sorted(stale_selection(changed).resolve(graph), key=lambda k: k.path)
        change = {p: now.get(p, "removed") for p in paths}
        run_key = hashlib.sha256(json.dumps(change, sort_keys=True).encode()).hexdigest()[:20]
        context.log.info(f"new or changed extracts: {change}")
        additions = new_authorities(context.instance, settings)
        keys = context.instance.get_dynamic_partitions(AUTHORITIES.name)
        keys += [k for request in additions for k in request.partition_keys]
        if changed == ["asc_cld"]:
            # Late or corrected social care files rerun their own authorities only (a range from
            # the first to the last of them, in partition order, when there are several).
            late = {
                parse_extract_name(Path(p), "asc_cld").lad19_code
                for p in changed_paths(before, now)
            }
            keys = [k for k in keys if k in late]
        partitioned = any(graph.get(key).partitions_def for key in selected)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=run_key,
                    asset_selection=selected,
                    tags={
                        "indices/changed_sources": ",".join(changed),
                        **(range_tags(keys) if partitioned else {}),
                        **run.inputs.tags(),
                    },
                )
            ],
            cursor=cursor,
            dynamic_partitions_requests=additions,
        )

    return new_extracts
