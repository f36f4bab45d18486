"""The production path (docs/production.md): the production instance config is valid for the
installed Dagster, its Kubernetes run pod can be built, and its storage section runs a real job on
a real PostgreSQL server started here on 127.0.0.1."""

import importlib
import os
import pwd
import shutil
import socket
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
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
from dagster._core.workspace.config_schema import process_workspace_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from tests.conftest import REPO

PRODUCTION = REPO / "docs" / "production"
GUIDE = REPO / "docs" / "production.md"

# What the pods of a deployment would have in their environment (ConfigMap and Secrets).
PRODUCTION_ENV = {
    "DAGSTER_PG_HOST": "dagster-postgresql.indices.svc",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "from-the-secret",
    "INDICES_IMAGE": "registry.example.org/indices:0.1.0",
}


def production_config() -> dict[str, Any]:
    return yaml.safe_load((PRODUCTION / "dagster.yaml").read_text())


def env_references(node: object) -> set[str]:
    """Every environment variable a config reads through `{env: NAME}`."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_references(value) for value in node))
    return set()


@pytest.fixture()
def production_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    return PRODUCTION_ENV


def test_the_guide_names_every_file_and_environment_variable_of_the_config():
    names = env_references(production_config())
    assert names == set(PRODUCTION_ENV)
    guide = GUIDE.read_text()
    assert [name for name in sorted(names) if f"`{name}`" not in guide] == []
    for path in ("docs/production/dagster.yaml", "docs/production/workspace.yaml"):
        assert path in guide


def test_the_instance_config_is_valid_and_names_installed_classes(production_env):
    config, custom_class = dagster_instance_config(str(PRODUCTION), "dagster.yaml")
    assert custom_class is None
    # Dagster only checks the shape of pluggable sections when an instance loads them: check
    # each class's own schema here, with the environment variables resolved.
    for section in ("run_coordinator", "run_launcher", "compute_logs"):
        module, name = config[section]["module"], config[section]["class"]
        cls = getattr(importlib.import_module(module), name)
        result = process_config(cls.config_type(), config[section]["config"])
        assert result.success, (section, result.errors)
    assert config["run_launcher"]["class"] == K8sRunLauncher.__name__
    storage = process_config(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    assert storage.value["postgres_db"]["port"] == 5432
    assert storage.value["postgres_db"]["password"] == "from-the-secret"


def test_the_run_pod_carries_the_secrets_volumes_and_image(production_env):
    """The Kubernetes Job the launcher submits for a run, built from the production config
    (everything but the API call, so no cluster is needed)."""
    launcher = production_config()["run_launcher"]["config"]
    resolved = process_config(K8sRunLauncher.config_type(), launcher)
    assert resolved.success, resolved.errors
    fields = DagsterK8sJobConfig._fields
    job_config = DagsterK8sJobConfig(**{k: v for k, v in resolved.value.items() if k in fields})
    job = construct_dagster_k8s_job(
        job_config, ["dagster", "api", "execute_run"], "dagster-run-0", component="run_worker"
    )
    pod = job.spec.template.spec
    container = pod.containers[0]
    assert container.image == PRODUCTION_ENV["INDICES_IMAGE"]
    assert pod.service_account_name == "indices-runs"
    env = {e.name: e for e in container.env}
    assert env["DAGSTER_HOME"].value == "/opt/dagster/dagster_home"
    password = env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref
    assert (password.name, password.key) == ("dagster-postgresql-secret", "postgresql-password")
    assert [s.config_map_ref.name for s in container.env_from if s.config_map_ref] == [
        "indices-env"
    ]
    assert [s.secret_ref.name for s in container.env_from if s.secret_ref] == ["indices-secrets"]
    mounts = {m.name: m for m in container.volume_mounts}
    assert mounts["raw"].read_only and mounts["raw"].mount_path == "/data/raw"
    compute_logs = production_config()["compute_logs"]["config"]["base_dir"]
    assert mounts["compute-logs"].mount_path == compute_logs
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["raw"].persistent_volume_claim.read_only
    assert container.resources.limits["memory"] == "3Gi"


def test_the_workspace_loads_the_code_location_from_its_server():
    workspace = yaml.safe_load((PRODUCTION / "workspace.yaml").read_text())
    result = process_workspace_config(workspace)
    assert result.success, result.errors
    (server,) = [entry["grpc_server"] for entry in result.value["load_from"]]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'code_location_name = "{server["location_name"]}"' in pyproject


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
