"""The Dagster code location: assets, checks, jobs and schedules wired to the `indices` library."""
