"""Delete old run history from the Dagster instance of `DAGSTER_HOME`.

    DAGSTER_HOME=.dagster_home .venv/bin/python scripts/prune_runs.py --days 30 [--dry-run]

Deletes every finished run (succeeded, failed or cancelled) created more than N days ago, with
its event log and captured step logs. A run holding the latest materialisation or observation of
an asset is kept, so the UI still shows every asset's current state, data version and staleness.
Runs that are queued or in progress are never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def runs_holding_latest_events(instance: dg.DagsterInstance) -> set[str]:
    """The runs that recorded the latest materialisation or observation of some asset."""
    keys = instance.get_asset_keys()
    latest = instance.get_latest_materialization_events(keys)
    runs = {event.run_id for event in latest.values() if event is not None}
    for key in keys:
        observations = instance.fetch_observations(key, limit=1).records
        runs.update(record.run_id for record in observations)
    return runs


def prune_runs(
    instance: dg.DagsterInstance,
    older_than_days: float,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete the finished runs created before `now` minus `older_than_days`, except those holding
    an asset's latest event; the ids of the runs deleted (or that would be, with `dry_run`)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, created_before=cutoff)
    )
    keep = runs_holding_latest_events(instance)
    doomed = [r.dagster_run.run_id for r in records if r.dagster_run.run_id not in keep]
    if not dry_run:
        for run_id in doomed:
            instance.delete_run(run_id)  # the run and its event log
            with contextlib.suppress(NotImplementedError):  # captured stdout and stderr
                instance.compute_log_manager.delete_logs(prefix=[run_id])
    return doomed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=30, help="keep runs newer than this")
    parser.add_argument("--dry-run", action="store_true", help="list, do not delete")
    args = parser.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        doomed = prune_runs(instance, args.days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(doomed)} finished run(s) created more than {args.days:g} days ago")
    for run_id in doomed if args.dry_run else []:
        print(f"  {run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
