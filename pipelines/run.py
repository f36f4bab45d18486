"""Running the main job in-process, for the `indices run` command and the tests."""

import os
from pathlib import Path

import dagster as dg

from indices.settings import Settings
from pipelines.definitions import defs


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """`DAGSTER_HOME`'s instance when set (as `make` sets it), else one kept in the private
    warehouse, so every run is recorded somewhere the UI can show."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return dg.DagsterInstance.get()
    fallback = Path(settings.warehouse_dir) / "dagster_home"
    fallback.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(fallback))


def run_main_job(settings: Settings, instance: dg.DagsterInstance | None = None):
    """Materialise every asset of the main job with these settings; the execution result."""
    config = {
        "raw_dir": str(settings.raw_dir),
        "warehouse_dir": str(settings.warehouse_dir),
        "publish_dir": str(settings.publish_dir),
        "reference_date": settings.reference_date.isoformat() if settings.reference_date else "",
    }
    job = defs.resolve_job_def("main")
    return job.execute_in_process(
        run_config={"resources": {"settings": {"config": config}}},
        instance=instance or instance_for(settings),
        raise_on_error=False,
    )
