"""The Dagster definitions, and the whole job end to end on the committed demo extracts (what
`indices run` refuses before a run: tests/unit/test_pipeline.py; the whole graph's summary:
tests/integration/test_definitions.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from indices.areas.disclosure import protect
from indices.core.published import list_versions
from indices.core.settings import Settings
from indices.sources import conformed
from pipelines.definitions import defs
from pipelines.run import run_main_job
from tests.conftest import DEMO_RAW, REPO


def test_definitions_load():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {
        "conformed/gp_patients",
        "conformed/gp_events",
        "conformed/gp_medications",
        "conformed/hes_apc",
        "conformed/asc_cld",
        "conformed/fingertips",
        "measures/persons",
        "measures/area_counts",
        "published/frailty_lsoa",
        "published/frailty_lad",
        "published/frailty_england",
        "published/ingest_ledger",
        "indices/imd2019",
        "indices/frailty_index",
    } <= keys
    assert defs.resolve_job_def("main") is not None
    assert defs.resolve_schedule_def("nightly").execution_timezone == "Europe/London"
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {"raw", "conformed", "measures", "published", "indices"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    settings = Settings.resolve(DEMO_RAW, root / "warehouse", root / "published")
    result = run_main_job(settings, instance=dg.DagsterInstance.ephemeral())
    return settings, result


def test_the_whole_job_materialises_on_the_demo_extracts(demo_run):
    settings, result = demo_run
    assert result.success
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert len(materialised) == 16
    by_authority = {
        e.asset_key.to_user_string(): set() for e in result.get_asset_materialization_events()
    }
    for event in result.get_asset_materialization_events():
        by_authority[event.asset_key.to_user_string()].add(event.partition)
    authorities = {"E06000001", "E06000017", "E06000053"}
    for partitioned in ("conformed/asc_cld", "measures/long_term_support", "measures/persons"):
        assert by_authority[partitioned] == authorities
    assert by_authority["measures/area_counts"] == {None}
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_published_catalog_answers_from_any_directory(demo_run, tmp_path):
    settings, _ = demo_run
    catalog = settings.publish_dir / "catalog.duckdb"
    query = (
        "SELECT (SELECT pop_65plus FROM frailty_england), (SELECT count(*) FROM frailty_lad), "
        "(SELECT count(*) FROM releases WHERE is_latest)"
    )
    script = (
        "import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        f"print(json.dumps(con.execute({query!r}).fetchall()[0]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, str(catalog)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    england, lads, latest = json.loads(output)
    assert england >= 10 and england % 5 == 0
    assert lads == 3 and latest == 9


def test_published_counts_follow_the_persons(demo_run):
    settings, _ = demo_run
    persons = settings.warehouse_dir / "measures" / "persons" / "*.parquet"
    con = duckdb.connect(str(settings.publish_dir / "catalog.duckdb"), read_only=True)
    exact = con.execute(
        f"SELECT lad19_code, count(*) FROM read_parquet('{persons}') WHERE age >= 65 "
        "AND lad19_code IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    published = con.execute("SELECT lad19_code, pop_65plus FROM frailty_lad ORDER BY 1").fetchall()
    assert [code for code, _ in exact] == [code for code, _ in published]
    for (_, count), (_, rounded) in zip(exact, published, strict=True):
        assert rounded == (None if 1 <= count <= 7 else 5 * ((count + 2) // 5))
    lsoa_columns = {r[0] for r in con.execute("DESCRIBE frailty_lsoa").fetchall()}
    assert not lsoa_columns & {"person_id", "nhs_number", "age", "date_of_birth"}
    manifest = json.loads(
        (settings.publish_dir / "frailty_lsoa" / "v000001" / "manifest.json").read_text()
    )
    roles = {i["role"] for i in manifest["inputs"]}
    assert {"raw/gp_patients", "raw/gp_events", "raw/gp_medications"} <= roles
    assert manifest["row_count"] == con.execute("SELECT count(*) FROM frailty_lsoa").fetchone()[0]


def test_every_raw_row_is_accounted_for_in_the_exact_ledger(demo_run):
    settings, _ = demo_run
    con = duckdb.connect()
    con.register("ledger", conformed.ledger_table(settings))  # private: the engineers' copy
    accounted = dict(
        con.execute(
            "SELECT source || '/' || file, sum(rows) FROM ledger "
            "WHERE outcome IN ('conformed', 'quarantined') GROUP BY ALL"
        ).fetchall()
    )
    synth = json.loads((DEMO_RAW / "_synth.json").read_text())["files"]
    assert accounted == {path: info["rows"] for path, info in synth.items()}
    quarantined = dict(
        con.execute(
            "SELECT reason, sum(rows) FROM ledger WHERE outcome = 'quarantined' "
            "AND source = 'gp_patients' GROUP BY ALL"
        ).fetchall()
    )
    faults = synth["gp_patients/gp_patients_2025-03-31.csv.gz"]["faults"]
    assert quarantined["duplicate"] == faults["duplicate_row"]
    assert quarantined["malformed_row"] == faults["malformed_row"]
    assert quarantined["invalid_nhs_number"] == (
        faults["nhs_bad_check"] + faults["nhs_blank"] + faults["nhs_short"]
    )
    assert quarantined["implausible_date"] == faults["pre_1900_date"]


def test_an_unchanged_rerun_publishes_nothing(demo_run):
    settings, _ = demo_run
    result = run_main_job(settings, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    folders = sorted(p.name for p in (settings.publish_dir / "frailty_lad").iterdir())
    assert folders == ["_releases", "v000001"]
    assert list_versions(settings.publish_dir, "frailty_lad") == ["v000001"]


def readme_queries() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```sql")[1:]]
    return [q.strip() for block in blocks for q in block.split(";") if q.strip()]


def test_the_readme_queries_answer(demo_run):
    settings, _ = demo_run
    queries = readme_queries()
    assert len(queries) >= 3
    con = duckdb.connect(str(settings.publish_dir / "catalog.duckdb"), read_only=True)
    for query in queries:
        assert con.execute(query).fetchall(), f"no rows from: {query}"


def test_index_releases_carry_their_report(demo_run):
    settings, _ = demo_run
    for dataset in ("frailty_index_lsoa", "imd2019_lsoa"):
        release = settings.publish_dir / dataset / "v000001"
        manifest = json.loads((release / "manifest.json").read_text())
        assert [f["path"] for f in manifest["files"]] == ["data.parquet", "report.html"]
        page = (release / "report.html").read_text()
        assert "Rank uncertainty" in page and "First release" in page


BASELINE = REPO / "tests" / "data" / "published_baseline"


def test_every_published_figure_matches_the_baseline(demo_run):
    """Refactors keep every published figure: each dataset of a run on the demo extracts equals,
    value for value, the release recorded in `tests/data/published_baseline/` (a deliberate
    change of a figure replaces that file in the same commit, saying why)."""
    settings, _ = demo_run
    baseline = sorted(p.stem for p in BASELINE.glob("*.parquet"))
    assert baseline == sorted(
        d for d in os.listdir(settings.publish_dir) if list_versions(settings.publish_dir, d)
    )
    for dataset in baseline:
        version = list_versions(settings.publish_dir, dataset)[-1]
        published = pq.read_table(settings.publish_dir / dataset / version / "data.parquet")
        expected = pq.read_table(BASELINE / f"{dataset}.parquet")
        assert published.schema.equals(expected.schema), dataset
        assert published.equals(expected), dataset


def test_the_published_ledger_is_disclosure_controlled(demo_run):
    settings, _ = demo_run
    exact = conformed.ledger_table(settings).to_pylist()
    con = duckdb.connect(str(settings.publish_dir / "catalog.duckdb"), read_only=True)
    published = con.execute(
        "SELECT source, file, outcome, reason, rows, rows_suppressed FROM ingest_ledger"
    ).fetchall()
    assert len(published) == len(exact) and any(1 <= row["rows"] <= 7 for row in exact)
    by_key = {(r["source"], r["file"], r["outcome"], r["reason"]): r["rows"] for r in exact}
    for source, file, outcome, reason, rows, suppressed in published:
        true = by_key[(source, file, outcome, reason)]
        assert rows == protect(true) and suppressed == (1 <= true <= 7)
