"""How a run executes its steps, chosen by configuration alone: `INDICES_EXECUTOR`.

- `multiprocess` (the default): each step in its own process on the machine of the run, forked
  from a server that has imported the code location once (a step starts in well under a second
  instead of re-importing everything), two steps at once, as each DuckDB step may use
  `INDICES_DUCKDB_MEMORY` (2 GB).
- `in_process`: every step in the run's own process.
- `dask`: each step a task on the Dask cluster whose scheduler is at `INDICES_DASK_ADDRESS`
  (e.g. `tcp://dask-scheduler:8786`); the warehouse and releases must then be where every
  worker reaches them (an object store, `s3://...`).
- `k8s`: each step in its own Kubernetes pod (dagster-k8s, the `production` extra); with the
  Kubernetes run launcher, pods take the run's image, environment and secrets.
"""

import os

import dagster as dg

EXECUTOR_ENV = "INDICES_EXECUTOR"
DASK_ADDRESS_ENV = "INDICES_DASK_ADDRESS"
KINDS = ("multiprocess", "in_process", "dask", "k8s")


def executor_from_environment() -> dg.ExecutorDefinition:
    """The executor `INDICES_EXECUTOR` names (see the module's text)."""
    kind = os.environ.get(EXECUTOR_ENV, "").strip() or "multiprocess"
    if kind == "multiprocess":
        return dg.multiprocess_executor.configured(
            {
                "max_concurrent": 2,
                "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}},
            }
        )
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "dask":
        from dagster_dask import dask_executor

        if not os.environ.get(DASK_ADDRESS_ENV):
            raise ValueError(f"{EXECUTOR_ENV}=dask needs {DASK_ADDRESS_ENV}, the Dask scheduler")
        return dask_executor.configured(
            {"cluster": {"existing": {"address": {"env": DASK_ADDRESS_ENV}}}}
        )
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV} must be one of {', '.join(KINDS)}, got {kind!r}")
