"""The production path (docs/production.md): its storage section runs a real job on a real
PostgreSQL server started here on 127.0.0.1 (the config itself, and the Kubernetes run pod it
builds, are checked in tests/integration/test_production.py)."""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from tests.conftest import production_config
from tests.helpers import free_port

# A real PostgreSQL server, as the webserver, daemon and run pods would reach it.


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str
    database: str

    def connect(self, database: str | None = None) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
        )


def server_binary(name: str) -> str:
    """`initdb` or `pg_ctl` on PATH, else in Debian's versioned folder; a clear failure if absent."""
    found = shutil.which(name) or next(
        iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        pytest.fail(
            f"PostgreSQL server program `{name}` not found (on PATH or in "
            "/usr/lib/postgresql/*/bin): install the Debian package `postgresql` "
            "(apt-get install postgresql) to run the production storage test."
        )
    return found


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throw-away server on a free port, password authentication over TCP, stopped after."""
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    server = Postgres(port=free_port(), user="dagster", password="s3cret pass", database="dagster")
    # PostgreSQL refuses to run as root: as root, run it as `nobody` in a folder it owns.
    as_user: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="indices-pg-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    password_file = root / "password"
    password_file.write_text(server.password + "\n")
    if as_user:
        os.chown(password_file, as_user["user"], as_user["group"])

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, cwd=root, **as_user)
        assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"

    data = root / "data"
    started = False
    try:
        run(initdb, "-D", str(data), "-U", server.user, f"--pwfile={password_file}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--locale=C",
            "--encoding=UTF8")  # fmt: skip
        options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start")
        started = True
        admin = server.connect("postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {server.database}")
        admin.close()
        yield server
    finally:
        if started:
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_the_server_checks_the_password(postgres):
    """So the instance below proves the password travels from the environment."""
    wrong = Postgres(postgres.port, postgres.user, "wrong", postgres.database)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        wrong.connect()


authority = dg.DynamicPartitionsDefinition(name="authority")


@dg.asset(partitions_def=authority)
def persons_counted(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"authority": context.partition_key, "persons": 3})


@pytest.fixture()
def instance_home(postgres: Postgres, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A Dagster home whose dagster.yaml is the production one without the sections that need
    Kubernetes (run launcher, shared log volume, resuming runs), the environment pointing at the
    test server."""
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres.port))
    monkeypatch.setenv("DAGSTER_PG_DB", postgres.database)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", postgres.user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    config = production_config()
    for section in ("run_launcher", "compute_logs", "run_monitoring"):
        del config[section]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_runs_events_partitions_and_ticks_are_kept_in_postgresql(postgres, instance_home):
    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        instance.add_dynamic_partitions("authority", ["E06000001", "E06000017"])
        result = dg.materialize([persons_counted], instance=instance, partition_key="E06000017")
        assert result.success
        run_id = result.run_id
        tick = instance.create_tick(
            TickData(
                instigator_origin_id="indices-test",
                instigator_name="new_extracts",
                instigator_type=InstigatorType.SENSOR,
                status=TickStatus.SKIPPED,
                timestamp=time.time(),
                selector_id="indices-test",
                cursor='{"gp_events": "seen"}',
            )
        )
        # What a run pod receives: the instance with the password still an `env:` reference.
        storage_yaml = instance.get_ref().storage_data.config_yaml
        assert "DAGSTER_PG_PASSWORD" in storage_yaml
        assert postgres.password not in storage_yaml

    # Read back through the database itself, and through a second instance (another pod).
    with postgres.connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "SELECT partition FROM event_logs WHERE run_id = %s"
            " AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        assert cursor.fetchall() == [("E06000017",)]
        cursor.execute("SELECT count(*) FROM job_ticks WHERE selector_id = 'indices-test'")
        assert cursor.fetchone() == (1,)
    connection.close()
    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        event = instance.get_latest_materialization_event(dg.AssetKey("persons_counted"))
        materialization = event.asset_materialization
        assert materialization.partition == "E06000017"
        assert materialization.metadata["persons"].value == 3
        assert sorted(instance.get_dynamic_partitions("authority")) == ["E06000001", "E06000017"]
        (ticked,) = instance.get_ticks("indices-test", "indices-test")
        assert (ticked.tick_id, ticked.cursor) == (tick.tick_id, '{"gp_events": "seen"}')
