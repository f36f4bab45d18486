"""Shared fixtures, and each test's kind: the folder it is in (`tests/unit`, `tests/integration`,
`tests/system`) is its marker, so `pytest -m unit` runs the fast tests (README, Layout).
Builders and checks that test files share are in `tests/helpers.py`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import (
    PATIENT_COLUMNS,
    VALID,
    Conformed,
    conform,
    register_row,
    single_deficit_codes,
    write_csv,
)

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
DEMO_RAW = REPO / "data" / "raw"  # the committed demo extracts (`make demo-data`)
PRODUCTION = REPO / "docs" / "production"  # the production configuration (docs/production.md)
KINDS = ("unit", "integration", "system")  # the markers, registered in pyproject.toml


def production_config() -> dict[str, Any]:
    return yaml.safe_load((PRODUCTION / "dagster.yaml").read_text())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the kind its folder names; a test outside the three folders is an
    error rather than a test that `make test-fast` and `make test-integration` silently skip."""
    for item in items:
        path = Path(item.path)
        if not path.is_relative_to(TESTS):
            continue
        kind = path.relative_to(TESTS).parts[0]
        if kind not in KINDS:
            raise pytest.UsageError(
                f"{path.relative_to(REPO)}: a test belongs in tests/unit, tests/integration or "
                "tests/system (README, Layout)"
            )
        item.add_marker(kind)


@pytest.fixture()
def deficit_codes() -> dict[str, str]:
    return single_deficit_codes()


@pytest.fixture()
def conformed(tmp_path: Path) -> Conformed:
    return Conformed(tmp_path / "warehouse")


@pytest.fixture(scope="module")
def register_tables(tmp_path_factory) -> Path:
    """The register (gp_patients) of the four VALID numbers, conformed once for the module."""
    root = tmp_path_factory.mktemp("register")
    raw, warehouse = root / "raw", root / "warehouse"
    rows = [register_row(n) for n in VALID]
    write_csv(raw / "gp_patients" / "gp_patients_2025-03-31.csv", PATIENT_COLUMNS, rows)
    assert conform(raw, warehouse, "gp_patients").rows_conformed == 4
    return warehouse


@pytest.fixture()
def registered(tmp_path: Path, register_tables: Path) -> tuple[Path, Path]:
    """A raw folder and a warehouse holding the conformed register (and its empty quarantine)."""
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    for part in ("conformed", "quarantine"):
        (warehouse / part).mkdir(parents=True)
        shutil.copy(register_tables / part / "gp_patients.parquet", warehouse / part)
    raw.mkdir()
    return raw, warehouse
