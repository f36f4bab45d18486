"""The production configuration (docs/production.md): the instance config is valid for the
installed Dagster and names installed classes, its Kubernetes run pod can be built, and the
workspace loads the code location (its storage on a real PostgreSQL server:
tests/system/test_production.py)."""

import importlib

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import process_workspace_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job
from dagster_postgres import DagsterPostgresStorage

from tests.conftest import PRODUCTION, REPO, production_config

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
