"""Person-level work is partitioned by lower-tier local authority: a run can fan out one
authority per run (a backfill), and one authority's late social care extract reruns alone.
National outputs depend on every partition and wait for all of them."""

import dagster as dg

from indices.core.settings import Settings
from indices.sources import conformed

AUTHORITIES = dg.DynamicPartitionsDefinition(name="authority")
ALL_AUTHORITIES = dg.AllPartitionMapping()
# Dagster's tags for a run over a range of partitions (a single-run backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def missing_authorities(instance: dg.DagsterInstance, settings: Settings) -> list[str]:
    """Authorities found in the raw folder that are not partitions yet."""
    known = set(instance.get_dynamic_partitions(AUTHORITIES.name))
    return [a for a in conformed.authorities_in_raw(settings) if a not in known]


def sync_authorities(instance: dg.DagsterInstance, settings: Settings) -> list[str]:
    """Add the raw folder's new authorities as partitions; every partition, in their order."""
    missing = missing_authorities(instance, settings)
    if missing:
        instance.add_dynamic_partitions(AUTHORITIES.name, missing)
    return instance.get_dynamic_partitions(AUTHORITIES.name)


def range_tags(keys: list[str]) -> dict[str, str]:
    """Tags that make one run cover partitions `keys[0]` to `keys[-1]` (in partition order)."""
    if not keys:
        return {}
    return {
        RANGE_START_TAG: keys[0],
        RANGE_END_TAG: keys[-1],
    }
