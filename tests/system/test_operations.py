"""`scripts/prune_runs.py` as an operator runs it: a process of its own, on the Dagster home
`DAGSTER_HOME` names (pruning itself, in process: tests/integration/test_operations.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dagster as dg

from tests.conftest import REPO


@dg.asset
def tiny() -> None:
    """A stand-in asset with a materialisation history."""


def test_prune_runs_command_uses_dagster_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the project's settings load
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        first = dg.materialize([tiny], instance=instance).run_id
        dg.materialize([tiny], instance=instance)

    def prune(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "scripts/prune_runs.py", "--days", "0", *args],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert prune("--dry-run").splitlines() == [
        "would delete 1 finished run(s) created more than 0 days ago",
        f"  {first}",
    ]
    assert prune().startswith("deleted 1 finished run(s)")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        assert len(instance.get_run_records()) == 1
