"""Running the main job in-process, for the `indices run` command and the tests."""

import fcntl
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from rich.progress import Progress

from indices.core import warehouse
from indices.core.settings import Settings
from indices.sources import inputs as run_inputs
from pipelines.definitions import defs
from pipelines.executors import EXECUTOR_ENV
from pipelines.partitions import range_tags, sync_authorities


def instance_home(settings: Settings) -> Path:
    """`DAGSTER_HOME` when set (as `make` sets it), else a home kept in the private warehouse
    (`~/.indices/dagster_home` when the warehouse is an object store), so every run is recorded
    somewhere the UI can show."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return Path(home)
    return warehouse.dagster_home(settings.warehouse_dir)


def instance_for(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance of `instance_home`."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    home = instance_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(home))


@contextmanager
def setting_up(home: Path) -> Iterator[None]:
    """One process at a time sets up an instance: two runs started together on a new SQLite
    home would both create its tables (and add the same partitions), and one would fail."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".indices-setup.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _follow(instance: dg.DagsterInstance, run_id: str, total: int, done: threading.Event) -> None:
    """A progress bar of finished steps, read from the run's event log while it runs."""
    finished = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("running the main job", total=total)
        while not done.wait(0.5):
            steps = instance.all_logs(run_id, of_type=finished)
            progress.update(task, completed=len(steps))


def settings_run_config(settings: Settings) -> dict:
    """The run config that points a run's `settings` resource at these folders."""
    config = {
        "raw_dir": str(settings.raw_dir),
        "warehouse_dir": str(settings.warehouse_dir),
        "publish_dir": str(settings.publish_dir),
        "reference_date": settings.reference_date.isoformat() if settings.reference_date else "",
    }
    return {"resources": {"settings": {"config": config}}}


def prepare(
    settings: Settings, instance: dg.DagsterInstance | None = None
) -> tuple[dg.DagsterInstance, dict[str, str]]:
    """The instance (`instance_for` unless given), its partitions brought up to date with the
    raw folder as the run reads it, and the tags of a run over every authority with these
    inputs (decided now, unless `settings` has them); one process at a time."""
    settings = settings if settings.inputs else run_inputs.start_run(settings)
    home = Path(instance.root_directory) if instance else instance_home(settings)
    with setting_up(home):
        instance = instance or instance_for(settings)
        return instance, {
            **range_tags(sync_authorities(instance, settings)),
            **settings.inputs.tags(),
        }


def main_job() -> dg.JobDefinition:
    """The main job, resolved: what runs on another executor import to rebuild it."""
    return defs.resolve_job_def("main")


def run_main_job(
    settings: Settings, instance: dg.DagsterInstance | None = None, quiet: bool = False
):
    """Materialise every asset of the main job with these settings, over every local authority
    (new ones in the raw folder become partitions first); the execution result. The run reads
    the extracts in force now (`settings.inputs` if already decided). In this process, unless
    `INDICES_EXECUTOR` names an executor, which then runs the steps (the instance must be a
    persistent one). `quiet` turns Dagster's console log off and shows a progress bar instead,
    then prints what the run warned about, one line each."""
    settings = settings if settings.inputs else run_inputs.start_run(settings)
    run_config = settings_run_config(settings)
    if quiet:
        run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    job = main_job()
    instance, tags = prepare(settings, instance)
    run_id = str(uuid.uuid4())
    done = threading.Event()
    follower = None
    elsewhere = bool(os.environ.get(EXECUTOR_ENV))  # steps run by the executor it names
    if quiet and not elsewhere:
        total = len(job.graph.nodes)  # one step per asset or check
        follower = threading.Thread(target=_follow, args=(instance, run_id, total, done))
        follower.start()
    try:
        if elsewhere:
            result = dg.execute_job(
                dg.reconstructable(main_job),
                instance,
                run_config=run_config,
                tags=tags,
                raise_on_error=False,
            )
        else:
            result = job.execute_in_process(
                run_config=run_config,
                instance=instance,
                raise_on_error=False,
                run_id=run_id,
                tags=tags,
            )
    finally:
        done.set()
        if follower:
            follower.join()
    if quiet:
        for line in run_warnings(instance, result.run_id):
            print(f"indices: warning: {line}", file=sys.stderr)
    return result


def run_warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What the steps of a run warned about (an extra column ignored, a count withheld), one
    line each, in order."""
    return [
        " ".join(entry.user_message.split())
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is None and entry.level == logging.WARNING
    ]
