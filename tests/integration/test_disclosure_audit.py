"""A run of the steps under the cell-key method, on synthetic extracts: conform, measures and
the area releases together publish perturbed counts and record the method (the method and the
audit on hand-made tables: tests/unit/test_disclosure_audit.py)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from indices.areas import tables
from indices.areas.counts import COUNTS
from indices.areas.disclosure import CELL_KEY, METHOD_ENV
from indices.areas.disclosure.cell_key import ptable
from indices.areas.release import published_problems
from indices.measures import parts
from indices.releases import datasets
from indices.releases.audit import audit_table
from indices.sources import conformed, registry
from tests.helpers import catalog

D = date(2025, 3, 31)
RUTLAND = "E06000017"
DATASETS = {a.level: a.name for a in tables.AREA_DATASETS}


@pytest.fixture(scope="module")
def cell_key_run(tmp_path_factory):
    from indices.core.settings import Settings
    from indices.measures.persons import UNLOCATED
    from indices.synth import generate

    root = tmp_path_factory.mktemp("cell_key_run")
    generate(root / "raw", persons=800, extract_date=D, seed=8, lads=[RUTLAND], fmt="csv")
    settings = Settings.resolve(root / "raw", root / "warehouse", root / "published")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(METHOD_ENV, CELL_KEY)
        authorities = conformed.authorities_in_raw(settings)
        for source in registry.SOURCES:
            if source in registry.AUTHORITY_SOURCES:
                conformed.conform_by_authority(settings, source, authorities)
            else:
                conformed.conform(settings, source)
        parts.persons(settings, [*authorities, UNLOCATED])
        parts.long_term_support(settings, conformed.social_care_authorities(settings))
        tables.area_counts(settings)
        releases = [datasets.publish_area(settings, d) for d in tables.AREA_DATASETS]
    return settings, releases


def test_a_cell_key_run_publishes_perturbed_counts_and_records_the_method(cell_key_run):
    settings, releases = cell_key_run
    for release in releases:
        record = release.manifest["disclosure"]
        assert record["method"] == CELL_KEY
        assert record["parameters"] == ptable().parameters()
        assert "secondary_suppressed" not in record
        columns = {c["column"]: c["description"] for c in release.manifest["schema"]}
        assert "cell-key method" in columns["pop_65plus"]
    con = catalog(settings.publish_dir)
    for dataset in DATASETS.values():
        table = con.sql(f"SELECT * FROM {dataset}").to_arrow_table()
        assert audit_table(table, [c.name for c in COUNTS], CELL_KEY) == []
        assert published_problems(table, CELL_KEY) == []
    flags = " OR ".join(f"{c.name}_suppressed" for c in COUNTS)
    assert con.execute(f"SELECT count(*) FROM frailty_lsoa WHERE {flags}").fetchone() == (0,)
    # The keys stay private: beside the counts in the warehouse, in no published column.
    assert not any("cell_key" in c for c in table.column_names)
    audit = json.loads((settings.warehouse_dir / "measures" / "disclosure_audit.json").read_text())
    assert set(audit) >= {"narrowest", "small_counts_pinned", "previous_release"}
